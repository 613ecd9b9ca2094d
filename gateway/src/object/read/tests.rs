//! Reads under pressure: many at once, stores that fail or hang, less memory than a rebuild.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::catalogue::ObjectMeta;
use crate::crypto::envelope::{PLAIN_CHUNK, TAG_LEN};
use crate::object::testing::{body, service_over};
use crate::object::{ObjectService, OpenedObject, Principal, PutObject, ServiceConfig};
use crate::store::memory::MemoryStore;
use crate::store::{FragmentHash, FragmentStore, StoreError, StoredFragment};

const MIB: usize = 1024 * 1024;
/// Plaintext of one read unit (64 sealed chunks, 4 MiB of ciphertext).
const UNIT_PLAIN: usize = 64 * PLAIN_CHUNK;

/// Fragment bytes fetched by reads and not yet consumed by their clients, in ciphertext bytes.
#[derive(Debug)]
struct Meter {
    fetched: AtomicUsize,
    consumed: AtomicUsize,
    peak: AtomicUsize,
    progress: tokio::sync::watch::Sender<usize>,
}

impl Meter {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            fetched: AtomicUsize::new(0),
            consumed: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            progress: tokio::sync::watch::channel(0).0,
        })
    }

    fn fetched(&self, n: usize) {
        let total = self.fetched.fetch_add(n, Ordering::SeqCst) + n;
        let held = total - self.consumed.load(Ordering::SeqCst);
        self.peak.fetch_max(held, Ordering::SeqCst);
        self.progress.send_replace(total);
    }

    /// A client got `plain` bytes of whole chunks: the ciphertext they came from is done with.
    fn consumed(&self, plain: usize) {
        let cipher = plain + plain.div_ceil(PLAIN_CHUNK) * TAG_LEN;
        self.consumed.fetch_add(cipher, Ordering::SeqCst);
    }
}

const NORMAL: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

/// A memory store whose reads can be made to fail or hang, metering what they hand out.
#[derive(Debug)]
struct ReadStore {
    inner: MemoryStore,
    reads: AtomicU8,
    meter: Arc<Meter>,
}

#[async_trait]
impl FragmentStore for ReadStore {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn put(&self, hash: FragmentHash, data: Bytes) -> Result<(), StoreError> {
        self.inner.put(hash, data).await
    }
    async fn get(
        &self,
        hash: FragmentHash,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        match self.reads.load(Ordering::SeqCst) {
            HANG => std::future::pending().await,
            FAIL => Err(StoreError::Io {
                store: self.id().into(),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            }),
            _ => {
                let bytes = self.inner.get(hash, range).await?;
                self.meter.fetched(bytes.len());
                Ok(bytes)
            }
        }
    }
    async fn delete(&self, hash: FragmentHash) -> Result<(), StoreError> {
        self.inner.delete(hash).await
    }
    async fn list_page(
        &self,
        after: Option<FragmentHash>,
        limit: usize,
    ) -> Result<Vec<StoredFragment>, StoreError> {
        self.inner.list_page(after, limit).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A 1+1 service (4 MiB segments: one read unit each) over two metered stores, holding an
/// object "k" of `units` whole read units.
async fn service(
    cfg: ServiceConfig,
    units: usize,
) -> (
    tempfile::TempDir,
    ObjectService,
    Principal,
    Vec<Arc<ReadStore>>,
    Arc<Meter>,
    Vec<u8>,
) {
    let meter = Meter::new();
    let stores: Vec<Arc<ReadStore>> = ["m0", "m1"]
        .into_iter()
        .map(|id| {
            Arc::new(ReadStore {
                inner: MemoryStore::new(id),
                reads: AtomicU8::new(NORMAL),
                meter: meter.clone(),
            })
        })
        .collect();
    let dyn_stores = stores
        .iter()
        .map(|s| s.clone() as Arc<dyn FragmentStore>)
        .collect();
    let cfg = ServiceConfig {
        default_profile: "1+1".into(),
        ..cfg
    };
    let (dir, svc, caller) = service_over(dyn_stores, cfg).await;
    let data: Vec<u8> = (0..units * UNIT_PLAIN)
        .map(|i| (i * 13 + i / 7919) as u8)
        .collect();
    let put = PutObject {
        bucket: "test".into(),
        key: "k".into(),
        meta: ObjectMeta::default(),
        storage_class: None,
        customer_key: None,
        content_md5: None,
        checksum: None,
        body: body(data.clone()),
        size_hint: None,
    };
    svc.put_object(&caller, put).await.unwrap();
    (dir, svc, caller, stores, meter, data)
}

/// Reads the whole object as a client would: each piece copied out, counted, then dropped.
async fn read_all(opened: &OpenedObject, meter: &Meter) -> Vec<u8> {
    let len = opened.size() as usize;
    let mut stream = opened.read(0..len as u64);
    let mut out = Vec::with_capacity(len);
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        out.extend_from_slice(&piece);
        meter.consumed(piece.len());
    }
    out
}

/// Six GETs at once, with read memory for four units: fragment bytes fetched and not yet
/// delivered never exceed it. Without a bound each GET held seven units (four in flight, two
/// queued, one being sent), 168 MiB between them.
#[tokio::test]
async fn concurrent_reads_hold_no_more_than_the_read_memory() {
    let budget = 16 * MIB;
    let cfg = ServiceConfig {
        read_buffer_bytes: budget,
        ..ServiceConfig::default()
    };
    let (_dir, svc, caller, _stores, meter, data) = service(cfg, 8).await;
    let mut reads = Vec::new();
    for _ in 0..6 {
        let (svc, caller, meter) = (svc.clone(), caller.clone(), meter.clone());
        let len = data.len();
        reads.push(tokio::spawn(async move {
            let opened = svc.open_object(&caller, "test", "k", None).await.unwrap();
            let mut stream = opened.read(0..len as u64);
            // Clients that read nothing until the reads have fetched all they may.
            let mut progress = meter.progress.subscribe();
            progress.wait_for(|&f| f >= budget).await.unwrap();
            let mut out = Vec::with_capacity(len);
            while let Some(piece) = stream.next().await {
                let piece = piece.unwrap();
                out.extend_from_slice(&piece);
                meter.consumed(piece.len());
            }
            out
        }));
    }
    for read in reads {
        let got = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("reads finish")
            .unwrap();
        assert!(got == data, "a read returned the wrong bytes");
    }
    let peak = meter.peak.load(Ordering::SeqCst);
    assert!(
        peak <= budget,
        "{peak} bytes held with {budget} of read memory"
    );
    assert_eq!(svc.inner.read_memory.held_bytes(), 0, "all of it came back");
}

/// A store whose reads hang: the GET returns the right bytes from parity, waiting out the read
/// timeout once, not once per segment the store holds data of. (Four units are read at once,
/// so a store holding data of five segments or more cost at least two timeouts before.)
#[tokio::test]
async fn a_store_whose_reads_hang_is_routed_around() {
    let (_dir, svc, caller, stores, meter, data) = service(ServiceConfig::default(), 16).await;
    // The store with most of the data fragments (at least eight of the sixteen) hangs.
    let opened = svc.open_object(&caller, "test", "k", None).await.unwrap();
    let extents = svc
        .inner
        .catalogue
        .extents(&opened.info().version_id)
        .await
        .unwrap();
    let on = |id: &str| {
        extents[0]
            .fragments
            .iter()
            .filter(|f| f.idx == 0 && f.store == id)
            .count()
    };
    let hung = stores.iter().max_by_key(|s| on(s.id())).unwrap();
    assert!(on(hung.id()) >= 8);
    hung.reads.store(HANG, Ordering::SeqCst);
    // Virtual time from here (the catalogue is not asked again: its pool's timeouts would fire): it moves only when every task waits on a timer, so it counts the
    // read timeouts waited out.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(600), read_all(&opened, &meter))
        .await
        .expect("the read finishes");
    assert!(got == data, "wrong bytes from parity");
    let waited = started.elapsed();
    let timeout = ServiceConfig::default().fragment_read_timeout;
    assert!(
        waited < 2 * timeout,
        "waited {waited:?}, more than one read timeout of {timeout:?}"
    );
}

/// With less read memory than one rebuild, and a store that fails every read, concurrent
/// degraded reads still finish: a rebuild then takes all of the memory and runs alone.
#[tokio::test]
async fn rebuilds_larger_than_the_read_memory_run_alone() {
    let cfg = ServiceConfig {
        read_buffer_bytes: 4 * MIB, // one 1+1 rebuild holds 8 MiB
        ..ServiceConfig::default()
    };
    let (_dir, svc, caller, stores, meter, data) = service(cfg, 8).await;
    stores[1].reads.store(FAIL, Ordering::SeqCst);
    let reads: Vec<_> = (0..3)
        .map(|_| {
            let (svc, caller, meter) = (svc.clone(), caller.clone(), meter.clone());
            tokio::spawn(async move {
                let opened = svc.open_object(&caller, "test", "k", None).await.unwrap();
                read_all(&opened, &meter).await
            })
        })
        .collect();
    for read in reads {
        let got = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("degraded reads finish")
            .unwrap();
        assert!(got == data, "wrong bytes from parity");
    }
    assert_eq!(svc.inner.read_memory.held_bytes(), 0);
}
