//! The upload pipeline under stalls, failures and hangs of its stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use md5::Digest as _;
use tokio::sync::Semaphore;

use crate::object::testing::{service_over, stored_fragments};
use crate::object::{ByteStream, Error, ObjectService, Principal, PutObject, ServiceConfig};
use crate::store::blocking::BlockingIo;
use crate::store::memory::MemoryStore;
use crate::store::{FragmentHash, FragmentStore, StoreError, StoredFragment};

const MIB: usize = 1024 * 1024;

/// A memory store whose writes wait for `gate` and fail once it holds `limit` fragments.
#[derive(Debug)]
struct TestStore {
    inner: MemoryStore,
    limit: usize,
    written: AtomicUsize,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl FragmentStore for TestStore {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn put(&self, hash: FragmentHash, data: Bytes) -> Result<(), StoreError> {
        drop(self.gate.acquire().await.expect("gate never closed"));
        if self.written.fetch_add(1, Ordering::SeqCst) >= self.limit {
            return Err(StoreError::Io {
                store: self.id().into(),
                source: std::io::Error::from_raw_os_error(28),
            });
        }
        self.inner.put(hash, data).await
    }
    async fn get(
        &self,
        hash: FragmentHash,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        self.inner.get(hash, range).await
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

/// A service on the 1+1 profile (4 MiB segments) over two stores, the second of which
/// fails after `limit` fragments.
async fn service(limit: usize) -> (tempfile::TempDir, ObjectService, Principal) {
    let open = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    service_gated(limit, open, ServiceConfig::default()).await
}

/// The same from `cfg`, with every write waiting for a permit of `gate`.
async fn service_gated(
    limit: usize,
    gate: Arc<Semaphore>,
    cfg: ServiceConfig,
) -> (tempfile::TempDir, ObjectService, Principal) {
    let store = |id: &str, limit: usize| -> Arc<dyn FragmentStore> {
        Arc::new(TestStore {
            inner: MemoryStore::new(id),
            limit,
            written: AtomicUsize::new(0),
            gate: gate.clone(),
        })
    };
    let stores = vec![store("m0", usize::MAX), store("m1", limit)];
    let cfg = ServiceConfig {
        default_profile: "1+1".into(),
        ..cfg
    };
    service_over(stores, cfg).await
}

/// A body of `len` bytes arriving in 256 KiB frames, as from a network.
fn framed(len: usize) -> (Vec<u8>, ByteStream) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
    let frames: Vec<Result<Bytes, _>> = data
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    (data, Box::pin(futures::stream::iter(frames)))
}

/// `body`, adding the length of every frame read from it to `pulled`.
fn counted(body: ByteStream, pulled: &Arc<AtomicUsize>) -> ByteStream {
    let pulled = pulled.clone();
    Box::pin(body.inspect(move |frame| {
        if let Ok(b) = frame {
            pulled.fetch_add(b.len(), Ordering::SeqCst);
        }
    }))
}

/// Waits until at least `least` bytes have been pulled and no more are; returns how many.
async fn pulled_until_still(pulled: &AtomicUsize, least: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = pulled.load(Ordering::SeqCst);
        if now >= least && now == last {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "read {now} bytes");
        last = now;
    }
}

fn put(body: ByteStream) -> PutObject {
    put_as("k", body)
}

fn put_as(key: &str, body: ByteStream) -> PutObject {
    crate::object::testing::put_request(key, body)
}

#[tokio::test]
async fn overlapping_segments_store_every_byte_in_order() {
    let (_dir, svc, caller) = service(usize::MAX).await;
    // Seven segments and a short tail: segments overlap (one encoding while the previous
    // one is still being written) all the way through.
    let (data, body) = framed(7 * 4 * MIB + 12_345);
    let outcome = tokio::time::timeout(Duration::from_secs(60), svc.put_object(&caller, put(body)))
        .await
        .expect("the upload finishes")
        .unwrap();
    assert_eq!(outcome.etag, hex::encode(md5::Md5::digest(&data)));
    let opened = svc.open_object(&caller, "test", "k", None).await.unwrap();
    let mut read = Vec::with_capacity(data.len());
    let mut stream = opened.read(0..data.len() as u64);
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert!(read == data, "the object reads back as written");
    assert_eq!(
        stored_fragments(&svc).await,
        16,
        "eight segments of 1+1 fragments"
    );
}

#[tokio::test]
async fn a_store_failing_mid_upload_fails_it_and_leaves_nothing() {
    // The second store takes three fragments, then refuses: the fourth segment fails while
    // the fifth may already be encoding.
    let (_dir, svc, caller) = service(3).await;
    let (_, body) = framed(7 * 4 * MIB);
    let result = tokio::time::timeout(Duration::from_secs(60), svc.put_object(&caller, put(body)))
        .await
        .expect("a failing upload ends instead of hanging");
    assert!(matches!(result, Err(Error::Store(_))), "{result:?}");
    assert!(matches!(
        svc.head_object(&caller, "test", "k", None).await,
        Err(Error::NoSuchKey { .. })
    ));
    // The fragments it wrote are deleted in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored_fragments(&svc).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fragments left behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With every store stalled, an upload stops reading its body once it holds two segments
/// and the first one's parity: its memory is bounded by the budget, not by the stores.
#[tokio::test]
async fn stalled_stores_stop_the_body_at_two_segments() {
    let gate = Arc::new(Semaphore::new(0));
    let (_dir, svc, caller) =
        service_gated(usize::MAX, gate.clone(), ServiceConfig::default()).await;
    let (data, body) = framed(6 * 4 * MIB);
    let pulled = Arc::new(AtomicUsize::new(0));
    let body = counted(body, &pulled);
    let upload = tokio::spawn({
        let svc = svc.clone();
        async move { svc.put_object(&caller, put(body)).await }
    });
    // Two segments are read without waiting; then reading must stop.
    let last = pulled_until_still(&pulled, 2 * 4 * MIB).await;
    assert!(
        last <= 2 * 4 * MIB + 256 * 1024,
        "{last} bytes read while no fragment could be written"
    );
    gate.add_permits(1 << 20);
    let outcome = tokio::time::timeout(Duration::from_secs(60), upload)
        .await
        .expect("the upload finishes once the stores move")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.etag, hex::encode(md5::Md5::digest(&data)));
}

/// Uploads share the gateway's upload memory: with room for one segment and one parity set
/// of the 1+1 profile, and every store stalled, two uploads read one segment between them.
#[tokio::test]
async fn uploads_share_the_gateway_upload_memory() {
    let gate = Arc::new(Semaphore::new(0));
    let cfg = ServiceConfig {
        upload_buffer_bytes: 8 * MIB,
        ..ServiceConfig::default()
    };
    let (_dir, svc, caller) = service_gated(usize::MAX, gate.clone(), cfg).await;
    let pulled = Arc::new(AtomicUsize::new(0));
    let mut uploads = Vec::new();
    for key in ["a", "b"] {
        let (data, body) = framed(3 * 4 * MIB);
        let body = counted(body, &pulled);
        let (svc, caller) = (svc.clone(), caller.clone());
        let upload = tokio::spawn(async move { svc.put_object(&caller, put_as(key, body)).await });
        uploads.push((data, upload));
    }
    let last = pulled_until_still(&pulled, 4 * MIB).await;
    // One segment, the frame that found no room for the next, and the other upload's first
    // frame, which found none for its first segment.
    assert!(
        last <= 4 * MIB + 2 * 256 * 1024,
        "{last} bytes read with room for one segment"
    );
    gate.add_permits(1 << 20);
    for (data, upload) in uploads {
        let outcome = tokio::time::timeout(Duration::from_secs(60), upload)
            .await
            .expect("both uploads finish once the stores move")
            .unwrap()
            .unwrap();
        assert_eq!(outcome.etag, hex::encode(md5::Md5::digest(&data)));
    }
}

/// A store on a hung disk: each write takes one of its two blocking slots and stays in it
/// until the sender of `gate` is dropped.
#[derive(Debug)]
struct HungStore {
    inner: MemoryStore,
    io: BlockingIo,
    gate: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

#[async_trait]
impl FragmentStore for HungStore {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn put(&self, hash: FragmentHash, data: Bytes) -> Result<(), StoreError> {
        let gate = self.gate.clone();
        self.io
            .run(move || {
                let _ = gate.lock().expect("poisoned").recv();
                Ok(())
            })
            .await?;
        self.inner.put(hash, data).await
    }
    async fn get(
        &self,
        hash: FragmentHash,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        self.inner.get(hash, range).await
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

/// Uploads whose fragments must go to a store that hangs fail with the write timeout (503
/// to the client) instead of waiting forever; the memory they held comes back, so that an
/// upload to healthy stores, with room for only one segment, goes through; and the hung
/// store holds its two blocking threads, however many writes gave up on it.
#[tokio::test]
async fn a_hung_store_fails_uploads_and_gives_their_memory_back() {
    let (hang, gate) = std::sync::mpsc::channel::<()>();
    let hung = Arc::new(HungStore {
        inner: MemoryStore::new("hung"),
        io: BlockingIo::new("hung", 2),
        gate: Arc::new(std::sync::Mutex::new(gate)),
    });
    let stores: Vec<Arc<dyn FragmentStore>> = vec![
        Arc::new(MemoryStore::new("m0")),
        Arc::new(MemoryStore::new("m1")),
        hung.clone(),
    ];
    let cfg = ServiceConfig {
        default_profile: "1+1".into(),
        upload_buffer_bytes: 8 * MIB, // one segment and one parity fragment
        fragment_write_timeout: Duration::from_millis(200),
        ..ServiceConfig::default()
    };
    let (_dir, svc, caller) = service_over(stores, cfg).await;
    // With m1 out of placement, every segment has a fragment on the hung store.
    svc.stores().mark("m1", false);
    for key in ["a", "b", "c", "d"] {
        svc.stores().mark("hung", true); // a failed write marks it down
        let (_, body) = framed(3 * 4 * MIB);
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            svc.put_object(&caller, put_as(key, body)),
        )
        .await
        .expect("a hung store fails the upload instead of holding it");
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Store(StoreError::TimedOut { store, operation: "write", .. }) if store == "hung"),
            "{err:?}"
        );
        let s3 = crate::s3::error::to_s3(err);
        assert_eq!(s3.code(), &s3s::S3ErrorCode::ServiceUnavailable);
    }
    // Each upload made one write to the hung store: two took its slots, two found none.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hung.io.running() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        hung.io.running(),
        2,
        "two blocking threads, not one per write"
    );
    svc.stores().mark("m1", true);
    let (data, body) = framed(3 * 4 * MIB);
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        svc.put_object(&caller, put_as("e", body)),
    )
    .await
    .expect("the failed uploads gave their memory back")
    .unwrap();
    assert_eq!(outcome.etag, hex::encode(md5::Md5::digest(&data)));
    let opened = svc.open_object(&caller, "test", "e", None).await.unwrap();
    let mut read = Vec::with_capacity(data.len());
    let mut stream = opened.read(0..data.len() as u64);
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert!(read == data, "the object reads back as written");
    // The disk answers: its threads return.
    drop(hang);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hung.io.running() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "stuck threads");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
