//! Single objects: put, head, open for reading, delete, copy.

use std::ops::Range;
use std::sync::Arc;

use super::ObjectInfo;
use super::digest::ChecksumExpectation;
use super::lease::ReadLease;
use super::read::{self, ReadableExtent};
use super::write::{self, ExtentWrite, WriteGuard};
use super::{
    Action, ByteStream, CustomerKey, Error, Inner, MAX_OBJECT_SIZE, ObjectService, Principal,
    Result, visible_etag,
};
use crate::catalogue::objects::Replaced;
use crate::catalogue::{Checksum, ExtentRecord, ObjectMeta, ObjectRecord, SettlementState, now_ms};
use crate::crypto::{Binding, ChunkCipher, DataKey};

/// A PutObject request in domain terms.
pub struct PutObject {
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    pub storage_class: Option<String>,
    pub customer_key: Option<CustomerKey>,
    pub content_md5: Option<[u8; 16]>,
    pub checksum: Option<ChecksumExpectation>,
    pub body: ByteStream,
    /// The body's length when the request declares it: the settlement check (space on chain)
    /// runs before any byte is read.
    pub size_hint: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub etag: String,
    pub last_modified_ms: i64,
    pub size: u64,
    pub checksum: Option<Checksum>,
    pub customer_key_md5: Option<String>,
}

/// An object opened for reading: its record, and how to decrypt it.
pub struct OpenedObject {
    record: ObjectRecord,
    svc: Arc<Inner>,
    extents: Vec<ReadableExtent>,
    /// Keeps the version's fragments from the collector while this or a stream of it lives.
    lease: Arc<ReadLease>,
}

impl std::fmt::Debug for OpenedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedObject")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl OpenedObject {
    pub fn info(&self) -> ObjectInfo {
        ObjectInfo::from(&self.record)
    }

    /// Plaintext length in bytes.
    pub fn size(&self) -> u64 {
        self.record.size
    }

    /// The plaintext byte range of each multipart part, in order.
    pub fn part_ranges(&self) -> Vec<Range<u64>> {
        self.extents
            .iter()
            .map(|e| e.offset..e.offset + e.extent.size)
            .collect()
    }

    /// Streams plaintext bytes `range` (clamped to the object).
    pub fn read(&self, range: Range<u64>) -> ByteStream {
        let end = range.end.min(self.record.size);
        if range.start >= end {
            return Box::pin(futures::stream::empty());
        }
        read::stream(
            self.svc.clone(),
            self.extents.clone(),
            range.start..end,
            self.lease.clone(),
        )
    }
}

pub(crate) fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) fn extent_cipher(
    dk: &DataKey,
    bucket: &str,
    key: &str,
    version_id: &str,
    e: &ExtentRecord,
) -> ChunkCipher {
    let binding = Binding {
        bucket,
        key,
        version_id,
        part: e.part,
    };
    ChunkCipher::new(&dk.content_key(), e.nonce_prefix, binding)
}

impl ObjectService {
    pub async fn put_object(&self, caller: &Principal, req: PutObject) -> Result<PutOutcome> {
        // Before anything else (the chain's space check included): a body S3 would never take
        // is refused as such, and not one byte of it is read.
        if req.size_hint.is_some_and(|n| n > MAX_OBJECT_SIZE) {
            return Err(Error::EntityTooLarge {
                max: MAX_OBJECT_SIZE,
            });
        }
        let bucket = self
            .authorize(caller, Action::WriteObject, &req.bucket)
            .await?;
        let payer = self.admit(&bucket, req.size_hint.unwrap_or(0)).await?;
        let (class, profile) = self.profile_for(&bucket.profile, req.storage_class.as_deref())?;
        let version_id = new_version_id();
        let dk = DataKey::generate();
        let binding = Binding {
            bucket: &req.bucket,
            key: &req.key,
            version_id: &version_id,
            part: 0,
        };
        let wraps = self
            .inner
            .keyring
            .wrap_new(&dk, &binding, req.customer_key.as_ref());
        let nonce_prefix = write::new_nonce_prefix();
        let guard = WriteGuard::new(self.inner.clone());
        let extent = write::write_extent(
            &self.inner,
            ExtentWrite {
                part: 0,
                profile,
                cipher: ChunkCipher::new(&dk.content_key(), nonce_prefix, binding),
                nonce_prefix,
                placement_seed: version_id.clone(),
                content_md5: req.content_md5,
                checksum: req.checksum,
                max_len: MAX_OBJECT_SIZE,
            },
            req.body,
            &guard,
        )
        .await?;
        let etag = visible_etag(
            &self.inner,
            req.customer_key.is_some(),
            &version_id,
            0,
            &extent.md5,
        );
        let record = ObjectRecord {
            bucket: req.bucket,
            key: req.key,
            version_id,
            size: extent.size,
            etag,
            last_modified_ms: now_ms(),
            meta: req.meta,
            storage_class: class,
            wraps,
            checksum: extent.checksum.clone(),
            parts_count: 0,
        };
        let extents = std::slice::from_ref(&extent);
        let settlement = match (self.settlement(), &payer) {
            (Some(s), Some(p)) => {
                Some(s.plan(p, &record.bucket, &record.key, record.size, extents))
            }
            _ => None,
        };
        let replaced = self
            .inner
            .catalogue
            .commit_object_settled(&bucket.id, &record, extents, settlement.as_ref())
            .await?;
        guard.commit();
        if let (Some(s), Some(p), Some(row)) = (self.settlement(), &payer, &settlement) {
            s.hold_until_declared(p, crate::settlement::Settlement::pending_fid(row));
        }
        // The workers are woken only when there is work: a small PUT of a new key queues
        // neither garbage nor a declaration, and each wake costs them a catalogue query.
        let replaced = replaced == Replaced::Previous;
        if replaced {
            self.gc_notify();
        }
        if replaced || settlement.is_some_and(|s| s.state == SettlementState::Pending) {
            self.settlement_notify();
        }
        Ok(PutOutcome {
            etag: record.etag,
            last_modified_ms: record.last_modified_ms,
            size: record.size,
            checksum: record.checksum,
            customer_key_md5: req.customer_key.map(|k| k.key_md5),
        })
    }

    /// What the object is (HeadObject without conditions), checking the caller and the SSE-C
    /// key.
    pub async fn head_object(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        ck: Option<&CustomerKey>,
    ) -> Result<ObjectInfo> {
        Ok(ObjectInfo::from(
            &self.head_record(caller, bucket, key, ck).await?,
        ))
    }

    async fn head_record(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        ck: Option<&CustomerKey>,
    ) -> Result<ObjectRecord> {
        self.authorize(caller, Action::ReadObject, bucket).await?;
        let record = self
            .inner
            .catalogue
            .object(bucket, key)
            .await?
            .ok_or_else(|| Error::NoSuchKey {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })?;
        self.inner.keyring.check(&record.wraps, ck)?;
        Ok(record)
    }

    /// Opens an object for reading (GetObject, copies).
    ///
    /// The object's row and its extents are two reads; an overwrite committed between them
    /// retires the extents the row names. The extents of a version never change while it is
    /// visible, so extents that add up to the row's size are the row's, and anything else means
    /// the object was replaced meanwhile: the row is read again. The lease is taken before the
    /// extents are read, so the collector cannot take fragments this read is about to use.
    pub async fn open_object(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        ck: Option<&CustomerKey>,
    ) -> Result<OpenedObject> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let record = self.head_record(caller, bucket, key, ck).await?;
            let lease = ReadLease::take(&self.inner, &record.version_id);
            let extents = self.inner.catalogue.extents(&record.version_id).await?;
            let covered: u64 = extents.iter().map(|e| e.size).sum();
            if covered != record.size || extents.is_empty() {
                continue;
            }
            let binding = Binding {
                bucket,
                key,
                version_id: &record.version_id,
                part: 0,
            };
            let dk = self.inner.keyring.unwrap(&record.wraps, &binding, ck)?;
            let mut readable = Vec::with_capacity(extents.len());
            let mut offset = 0;
            for e in extents {
                let cipher = Arc::new(extent_cipher(&dk, bucket, key, &record.version_id, &e));
                let size = e.size;
                readable.push(ReadableExtent {
                    extent: Arc::new(e),
                    cipher,
                    offset,
                });
                offset += size;
            }
            return Ok(OpenedObject {
                record,
                svc: self.inner.clone(),
                extents: readable,
                lease,
            });
        }
        Err(Error::DataLoss(format!(
            "object {bucket}/{key}: its extents do not match its size ({ATTEMPTS} reads)"
        )))
    }

    /// Deletes an object; deleting a missing key succeeds, as in S3.
    pub async fn delete_object(&self, caller: &Principal, bucket: &str, key: &str) -> Result<()> {
        let b = self.authorize(caller, Action::DeleteObject, bucket).await?;
        if self
            .inner
            .catalogue
            .delete_object(bucket, &b.id, key)
            .await?
            == Replaced::Previous
        {
            self.gc_notify();
            self.settlement_notify();
        }
        Ok(())
    }

    /// Wakes the settlement worker after an enqueue.
    pub(crate) fn settlement_notify(&self) {
        if let Some(s) = self.settlement() {
            s.notify();
        }
    }

    /// The settlement row of an object version (its storage order), if settlement is on.
    pub async fn object_settlement(
        &self,
        version_id: &str,
    ) -> Result<Option<crate::catalogue::SettlementRecord>> {
        if self.settlement().is_none() {
            return Ok(None);
        }
        Ok(self
            .inner
            .catalogue
            .settlement_of_version(version_id)
            .await?)
    }

    /// Copies an object by re-encrypting it under the destination's key, version and binding.
    /// `dest.body` is ignored; the source's bytes are used.
    pub async fn copy_object(
        &self,
        caller: &Principal,
        source: &OpenedObject,
        range: Option<Range<u64>>,
        mut dest: PutObject,
    ) -> Result<PutOutcome> {
        let range = range.unwrap_or(0..source.size());
        let size = range.end.saturating_sub(range.start);
        dest.body = source.read(range);
        dest.size_hint = Some(size);
        self.put_object(caller, dest).await
    }
}
