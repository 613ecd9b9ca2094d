//! The object service: buckets, objects and multipart uploads in domain terms, with no HTTP
//! types. Front ends (S3 now, REST later) call it; it drives the catalogue and the data path
//! (encryption, erasure coding, fragment stores).

mod authorize;
mod buckets;
mod budget;
mod buffers;
mod conditions;
pub mod digest;
mod error;
pub mod gc;
mod get;
mod info;
mod keyring;
pub mod layout;
mod lease;
mod list;
mod multipart;
mod objects;
#[cfg(test)]
mod races;
mod read;
mod read_memory;
mod rebuild;
mod unit;
mod write;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::catalogue::Catalogue;
use crate::crypto::MasterKey;
use crate::erasure::{Codecs, Profile};
use crate::settlement::{Payer, Settlement};
use crate::store::StoreSet;

pub use crate::catalogue::{Checksum, ObjectMeta};
pub use authorize::{Action, Principal};
pub use conditions::{Conditions, CopySourceConditions};
pub use digest::{ChecksumAlgorithm, ChecksumExpectation};
pub use error::{Error, Result};
pub use get::{ByteRange, ObjectRead, ReadRequest, Selection};
pub use info::ObjectInfo;
pub use list::Listing;
pub use multipart::{CompletedPart, PartInfo, UploadInfo};
pub use objects::{OpenedObject, PutObject, PutOutcome};

/// Errors a request body stream may yield.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
/// A request or response body.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send + Sync>>;

/// S3's limit on a single object (and on a single PUT).
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// An SSE-C key from the request headers, already checked against its MD5.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    pub key: [u8; 32],
    /// Base64 MD5 of the key, echoed in responses.
    pub key_md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey")
            .field("key_md5", &self.key_md5)
            .finish_non_exhaustive()
    }
}

/// Tunables of the object service (set from the gateway config).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Profile of buckets created without one.
    pub default_profile: String,
    /// Objects (and parts) smaller than this are kept inline in the catalogue, still encrypted.
    pub inline_threshold: usize,
    /// `x-amz-storage-class` value -> erasure profile. STANDARD always means the bucket's profile.
    pub storage_classes: BTreeMap<String, String>,
    /// Segments being encoded or written at once, over all uploads: bounds the CPU uploads take.
    pub max_segments_in_flight: usize,
    /// Memory for the segment and parity buffers of all uploads together, in bytes.
    pub upload_buffer_bytes: usize,
    /// Memory for the fragment bytes of all reads together (fetched, opened, queued for the
    /// client), in bytes.
    pub read_buffer_bytes: usize,
    /// Unreferenced fragments younger than this are left alone by the periodic sweep (another
    /// gateway sharing the catalogue may still be writing them).
    pub gc_grace: Duration,
    /// Fragments of replaced or deleted data stay this long before the collector deletes them,
    /// for reads through other gateways sharing the catalogue (this gateway's own reads hold
    /// leases). Zero with a catalogue of this gateway's own.
    pub gc_read_grace: Duration,
    /// Multipart uploads neither completed nor aborted within this time are aborted.
    pub abandoned_upload_after: Duration,
    /// A fragment read slower than this is given up on and the segment rebuilt from parity.
    pub fragment_read_timeout: Duration,
    /// A fragment write slower than this counts as failed: the fragment goes to a spare store,
    /// or the upload fails.
    pub fragment_write_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            default_profile: "cess".into(),
            inline_threshold: 128 * 1024,
            storage_classes: BTreeMap::from([(
                "REDUCED_REDUNDANCY".to_string(),
                "4+2".to_string(),
            )]),
            max_segments_in_flight: 4,
            upload_buffer_bytes: 256 * 1024 * 1024,
            read_buffer_bytes: 256 * 1024 * 1024,
            gc_grace: Duration::from_secs(24 * 3600),
            gc_read_grace: Duration::ZERO,
            abandoned_upload_after: Duration::from_secs(7 * 24 * 3600),
            fragment_read_timeout: Duration::from_secs(5),
            fragment_write_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Inner {
    catalogue: Catalogue,
    stores: StoreSet,
    /// Wraps and unwraps data keys (the master key lives here).
    keyring: keyring::Keyring,
    codecs: Codecs,
    cfg: ServiceConfig,
    inflight: write::InFlight,
    segment_slots: Arc<tokio::sync::Semaphore>,
    /// Segment and fragment buffers of uploads, reused.
    buffers: buffers::BufferPool,
    /// How much of those all uploads may hold at once.
    upload_memory: budget::UploadMemory,
    /// How much fragment data all reads may hold at once.
    read_memory: read_memory::ReadMemory,
    gc_wake: tokio::sync::Notify,
    /// Versions that reads in progress stream from: the collector spares them.
    read_leases: lease::ReadLeases,
    /// Settlement of storage orders; unset in tests that do not need a chain.
    settlement: std::sync::OnceLock<Arc<Settlement>>,
}

#[derive(Debug, Clone)]
pub struct ObjectService {
    inner: Arc<Inner>,
}

impl ObjectService {
    pub fn new(
        catalogue: Catalogue,
        stores: StoreSet,
        master: MasterKey,
        cfg: ServiceConfig,
    ) -> Result<Self> {
        let profile = Profile::parse(&cfg.default_profile)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if profile.total() > stores.len() {
            return Err(Error::NotEnoughStores {
                needed: profile.total(),
                healthy: stores.len(),
            });
        }
        let slots = cfg.max_segments_in_flight.max(1);
        let upload_memory = budget::UploadMemory::new(cfg.upload_buffer_bytes);
        let read_memory = read_memory::ReadMemory::new(cfg.read_buffer_bytes);
        Ok(Self {
            inner: Arc::new(Inner {
                catalogue,
                stores,
                keyring: keyring::Keyring::new(master),
                codecs: Codecs::default(),
                cfg,
                inflight: write::InFlight::default(),
                segment_slots: Arc::new(tokio::sync::Semaphore::new(slots)),
                // Enough idle buffers for one upload of the default profile to cycle through:
                // its memory budget of two segments and one set of parity (see `write`).
                buffers: buffers::BufferPool::new(
                    2 * profile.segment_size() as usize + profile.m * profile.fragment_size,
                ),
                upload_memory,
                read_memory,
                gc_wake: tokio::sync::Notify::new(),
                read_leases: lease::ReadLeases::default(),
                settlement: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Which database the catalogue is (for the start-up log).
    pub fn catalogue_backend(&self) -> crate::catalogue::Backend {
        self.inner.catalogue.backend()
    }

    /// Closes the catalogue's connections, once serving has stopped.
    pub async fn close(&self) {
        self.inner.catalogue.close().await;
    }

    /// Turns on settlement: uploads are checked against the chain and committed objects get a
    /// storage order in the outbox. Set once, before serving.
    pub fn attach_settlement(&self, settlement: Arc<Settlement>) {
        let _ = self.inner.settlement.set(settlement);
    }

    pub fn settlement(&self) -> Option<&Arc<Settlement>> {
        self.inner.settlement.get()
    }

    /// Asks settlement whether an upload of about `size` bytes (0: unknown) into `bucket` may
    /// go ahead; the bucket's owner pays. Returns the payer, or `None` without settlement.
    pub(crate) async fn admit(
        &self,
        bucket: &crate::catalogue::Bucket,
        size: u64,
    ) -> Result<Option<Payer>> {
        let Some(s) = self.settlement() else {
            return Ok(None);
        };
        Ok(Some(s.admit(&bucket.owner_id, bucket, size).await?))
    }

    /// How many fragment stores the service writes to.
    pub fn store_count(&self) -> usize {
        self.inner.stores.len()
    }

    /// The stores themselves, for tests that damage or count what they hold.
    #[cfg(test)]
    pub(crate) fn stores(&self) -> &StoreSet {
        &self.inner.stores
    }

    /// The profile that `storage_class` selects in a bucket whose own profile is `bucket_profile`.
    fn profile_for(
        &self,
        bucket_profile: &str,
        storage_class: Option<&str>,
    ) -> Result<(String, Profile)> {
        let class = storage_class.unwrap_or("STANDARD");
        let name = if class == "STANDARD" {
            bucket_profile
        } else {
            self.inner
                .cfg
                .storage_classes
                .get(class)
                .ok_or_else(|| Error::InvalidStorageClass(class.to_string()))?
        };
        let profile = Profile::parse(name).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok((class.to_string(), profile))
    }
}

/// The ETag a client is given for data whose plaintext MD5 is `md5_hex`: that MD5, or for SSE-C
/// data (`sse_c`) an opaque keyed hash of it, as S3 does not show the MD5 of SSE-C plaintext.
/// `part` is 0 for a whole object, else the part number.
fn visible_etag(svc: &Inner, sse_c: bool, version_id: &str, part: u32, md5_hex: &str) -> String {
    let md5 = hex::decode(md5_hex)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok());
    match md5 {
        Some(md5) if sse_c => svc.keyring.master().sse_c_etag(version_id, part, &md5),
        _ => md5_hex.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::{ObjectService, Principal, ServiceConfig};
    use crate::crypto::MasterKey;
    use crate::store::memory::MemoryStore;
    use crate::store::{FragmentStore, StoreSet};

    /// An object service over a temporary SQLite catalogue and in-memory stores, with one
    /// bucket ("test") owned by the returned caller.
    pub async fn service(
        stores: usize,
        cfg: ServiceConfig,
    ) -> (tempfile::TempDir, ObjectService, Principal) {
        let stores = (0..stores)
            .map(|i| Arc::new(MemoryStore::new(format!("m{i}"))) as Arc<dyn FragmentStore>)
            .collect();
        service_over(stores, cfg).await
    }

    /// The same over the given stores.
    pub async fn service_over(
        stores: Vec<Arc<dyn FragmentStore>>,
        cfg: ServiceConfig,
    ) -> (tempfile::TempDir, ObjectService, Principal) {
        let (dir, catalogue) = crate::catalogue::tests::sqlite_catalogue().await;
        let svc = ObjectService::new(
            catalogue,
            StoreSet::new(stores),
            MasterKey::from_bytes([1; 32]),
            cfg,
        )
        .unwrap();
        let caller = Principal::user("u1");
        svc.create_bucket(&caller, "test", None).await.unwrap();
        (dir, svc, caller)
    }

    /// A PutObject of `body` into the test bucket at `key`, with nothing else asked.
    pub fn put_request(key: &str, body: super::ByteStream) -> super::PutObject {
        super::PutObject {
            bucket: "test".into(),
            key: key.into(),
            meta: crate::catalogue::ObjectMeta::default(),
            storage_class: None,
            customer_key: None,
            content_md5: None,
            checksum: None,
            body,
            size_hint: None,
        }
    }

    pub fn body(bytes: Vec<u8>) -> super::ByteStream {
        Box::pin(futures::stream::iter([Ok(bytes::Bytes::from(bytes))]))
    }

    /// Fragments held by all the service's stores together.
    pub async fn stored_fragments(svc: &ObjectService) -> usize {
        futures::future::join_all(svc.stores().all().map(|s| s.list()))
            .await
            .iter()
            .map(|l| l.as_ref().expect("store lists").len())
            .sum()
    }
}
