//! The upload pipeline: body -> digests -> sealed chunks -> segments -> Reed-Solomon fragments
//! -> fragment stores. Segments overlap: one is filled from the network while the one before it
//! is encoded, and while the fragments of the one before that are still being written. The
//! upload's [`UploadBudget`] caps what they hold together at two segments and one set of parity.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use tokio::sync::oneshot;

use super::budget::{Hold, UploadBudget};
use super::buffers::{BufferPool, PooledBuf};
use super::digest::{ChecksumExpectation, Digests, Hasher};
use super::{ByteStream, Error, Inner, Result};
use crate::catalogue::{ExtentRecord, FragmentRecord, now_ms};
use crate::crypto::envelope::{CIPHER_CHUNK, NONCE_PREFIX_LEN, PLAIN_CHUNK, TAG_LEN};
use crate::crypto::{ChunkCipher, random_array};
use crate::erasure::{self, Profile};
use crate::store::{FragmentHash, StoreError};

/// How far (in KiB of body) the digest thread may fall behind the network. MD5 is serial and
/// the slowest stage of an upload, so the backlog is usually full: unbounded, or bounded by frame
/// count, it pinned ~90 MiB of body frames (hyper hands them over ~360 KiB at a time).
const DIGEST_BACKLOG_KIB: usize = 4 * 1024;

/// Fragments that requests still in progress have written, by (store, hash), with a count: the
/// orphan sweep must not collect them before their object commits.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    fragments: Mutex<HashMap<(String, FragmentHash), usize>>,
}

impl InFlight {
    fn add(&self, store: &str, hash: FragmentHash) {
        *self
            .fragments
            .lock()
            .expect("poisoned")
            .entry((store.to_string(), hash))
            .or_default() += 1;
    }

    fn remove(&self, store: &str, hash: FragmentHash) {
        let mut map = self.fragments.lock().expect("poisoned");
        let key = (store.to_string(), hash);
        if let Some(n) = map.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&key);
            }
        }
    }

    pub(crate) fn contains(&self, store: &str, hash: FragmentHash) -> bool {
        self.fragments
            .lock()
            .expect("poisoned")
            .contains_key(&(store.to_string(), hash))
    }
}

/// Cleans up after a write that never committed (an error, a bad digest, a dropped connection):
/// the fragments it wrote are deleted in the background.
pub(crate) struct WriteGuard {
    svc: Arc<Inner>,
    written: Arc<Mutex<Vec<(String, FragmentHash)>>>,
    committed: bool,
}

impl WriteGuard {
    pub(crate) fn new(svc: Arc<Inner>) -> Self {
        Self {
            svc,
            written: Arc::default(),
            committed: false,
        }
    }

    /// The catalogue now references what was written.
    pub(crate) fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let written = std::mem::take(&mut *self.written.lock().expect("poisoned"));
        if self.committed {
            for (store, hash) in &written {
                self.svc.inflight.remove(store, *hash);
            }
            return;
        }
        if written.is_empty() {
            return;
        }
        let svc = self.svc.clone();
        let cleanup = async move {
            // The request may have queued its commit before it was dropped; the commit then
            // still runs, and its fragments must not be judged unreferenced before it has.
            if svc.catalogue.barrier().await.is_err() {
                for (store, hash) in &written {
                    svc.inflight.remove(store, *hash);
                }
                return; // the orphan sweep will judge them later
            }
            for (store, hash) in written {
                let referenced = svc
                    .catalogue
                    .fragment_referenced(hash, &store)
                    .await
                    .unwrap_or(true);
                if !referenced && let Some(s) = svc.stores.by_id(&store) {
                    // A hung store (likely why the write failed) must not hold the cleanup:
                    // what is left there, the orphan sweep collects.
                    let timeout = svc.cfg.fragment_write_timeout;
                    let _ = tokio::time::timeout(timeout, s.delete(hash)).await;
                }
                svc.inflight.remove(&store, hash);
            }
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(cleanup);
        }
    }
}

/// Upload memory held by whoever still needs the buffer it stands for.
type Share = Option<Arc<Hold>>;

/// Plaintext of (at most) one segment, laid out as sealed chunks will be: chunk `i` at
/// `i * CIPHER_CHUNK`, with room for its tag after it. Sealing then happens in place.
struct SegmentBuf {
    data: PooledBuf,
    plain: usize,
    chunk_fill: usize,
    capacity: usize,
    /// The segment's upload memory, taken before it moves into a pooled buffer.
    share: Option<Hold>,
}

impl SegmentBuf {
    fn new(chunks: u64) -> Self {
        Self {
            data: PooledBuf::unpooled(Vec::new()),
            plain: 0,
            chunk_fill: 0,
            capacity: chunks as usize * PLAIN_CHUNK,
            share: None,
        }
    }

    /// Whether pushing `incoming` more bytes moves the segment into a pooled buffer.
    fn goes_large(&self, incoming: usize, inline_limit: usize) -> bool {
        !self.data.is_pooled() && self.plain + incoming > inline_limit
    }

    fn is_full(&self) -> bool {
        self.plain == self.capacity
    }

    /// Bytes of a full segment once sealed.
    fn sealed_capacity(&self) -> usize {
        self.capacity / PLAIN_CHUNK * CIPHER_CHUNK
    }

    /// Copies as much of `src` as fits; returns how much. From `inline_limit` bytes of plaintext
    /// on, the object is a large one and the segment moves into a segment-sized buffer from
    /// `pool`.
    fn push(
        &mut self,
        src: &[u8],
        pool: &BufferPool,
        inline_limit: usize,
    ) -> std::io::Result<usize> {
        let mut taken = 0;
        while taken < src.len() && !self.is_full() {
            if self.chunk_fill == PLAIN_CHUNK {
                let len = self.data.len();
                self.data.resize(len + TAG_LEN);
                self.chunk_fill = 0;
            }
            if !self.data.is_pooled() && self.plain >= inline_limit {
                let mut large = pool.take(self.sealed_capacity())?;
                large.extend_from_slice(&self.data);
                self.data = large;
            }
            let n = (PLAIN_CHUNK - self.chunk_fill).min(src.len() - taken);
            self.data.extend_from_slice(&src[taken..taken + n]);
            self.chunk_fill += n;
            self.plain += n;
            taken += n;
        }
        Ok(taken)
    }

    /// Seals every chunk in place; `first_chunk` is the extent-wide index of chunk 0.
    fn seal(mut self, cipher: &ChunkCipher, first_chunk: u64, last: bool) -> Result<PooledBuf> {
        let len = self.data.len();
        self.data.resize(len + TAG_LEN);
        let chunks = self.data.len().div_ceil(CIPHER_CHUNK);
        for (i, chunk) in self.data.chunks_mut(CIPHER_CHUNK).enumerate() {
            cipher.seal(first_chunk + i as u64, last && i + 1 == chunks, chunk)?;
        }
        Ok(self.data)
    }
}

/// Everything needed to write one extent.
pub(crate) struct ExtentWrite {
    pub part: u32,
    pub profile: Profile,
    pub cipher: ChunkCipher,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    /// Seeds placement; unique per extent.
    pub placement_seed: String,
    pub content_md5: Option<[u8; 16]>,
    pub checksum: Option<ChecksumExpectation>,
    pub max_len: u64,
}

/// A random nonce prefix for a new extent.
pub(crate) fn new_nonce_prefix() -> [u8; NONCE_PREFIX_LEN] {
    random_array()
}

/// Body frames on their way to the digest thread, each holding its share of the backlog budget
/// until it is hashed.
struct DigestFeed {
    tx: tokio::sync::mpsc::UnboundedSender<(Bytes, tokio::sync::OwnedSemaphorePermit)>,
    backlog: Arc<tokio::sync::Semaphore>,
}

type DigestFrames =
    tokio::sync::mpsc::UnboundedReceiver<(Bytes, tokio::sync::OwnedSemaphorePermit)>;

impl DigestFeed {
    fn new() -> (Self, DigestFrames) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let backlog = Arc::new(tokio::sync::Semaphore::new(DIGEST_BACKLOG_KIB));
        (Self { tx, backlog }, rx)
    }

    /// Waits until the backlog has room for `frame`, then queues it.
    async fn send(&self, frame: Bytes) -> Result<()> {
        let kib = frame.len().div_ceil(1024).min(DIGEST_BACKLOG_KIB) as u32;
        let permit = self
            .backlog
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("semaphore never closed");
        self.tx
            .send((frame, permit))
            .map_err(|_| Error::DataLoss("hashing thread stopped".into()))
    }
}

struct Reader {
    body: ByteStream,
    carry: Option<Bytes>,
    digest: DigestFeed,
    total: u64,
    max_len: u64,
    inline_limit: usize,
    pool: BufferPool,
    budget: UploadBudget,
}

impl Reader {
    /// Fills `buf` from the body; returns true when the body has ended.
    async fn fill(&mut self, buf: &mut SegmentBuf) -> Result<bool> {
        loop {
            if let Some(b) = self.carry.take() {
                if buf.goes_large(b.len(), self.inline_limit) && buf.share.is_none() {
                    buf.share = Some(self.budget.segment().await);
                }
                let n = buf
                    .push(&b, &self.pool, self.inline_limit)
                    .map_err(Error::Buffers)?;
                if n < b.len() {
                    self.carry = Some(b.slice(n..));
                    return Ok(false);
                }
            }
            let Some(item) = self.body.next().await else {
                return Ok(true);
            };
            let bytes = item.map_err(Error::Body)?;
            if bytes.is_empty() {
                continue;
            }
            self.total += bytes.len() as u64;
            if self.total > self.max_len {
                return Err(Error::EntityTooLarge { max: self.max_len });
            }
            self.digest.send(bytes.clone()).await?;
            if buf.is_full() {
                self.carry = Some(bytes);
                return Ok(false);
            }
            self.carry = Some(bytes);
        }
    }
}

/// Streams `body` into a new extent: inline if small, else erasure-coded fragments.
pub(crate) async fn write_extent(
    svc: &Arc<Inner>,
    w: ExtentWrite,
    body: ByteStream,
    guard: &WriteGuard,
) -> Result<ExtentRecord> {
    let (digest, mut frames) = DigestFeed::new();
    let algorithm = w.checksum.as_ref().map(|c| c.algorithm);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut h = Hasher::new(algorithm);
        while let Some((frame, _backlog)) = frames.blocking_recv() {
            h.update(&frame);
        }
        h.finish()
    });
    let inline_threshold = svc.cfg.inline_threshold;
    let mut reader = Reader {
        body,
        carry: None,
        digest,
        total: 0,
        max_len: w.max_len,
        inline_limit: inline_threshold,
        pool: svc.buffers.clone(),
        budget: svc.upload_memory.budget(&w.profile),
    };
    // Keeps recycled segment buffers around while this upload runs.
    let _pool_user = svc.buffers.user();
    let cipher = Arc::new(w.cipher);
    let chunks_per_segment = w.profile.chunks_per_segment();
    let mut jobs = Jobs::default();
    let mut inline = None;
    // Closes when the newest job's encoding thread has finished.
    let mut encoded_rx: Option<oneshot::Receiver<()>> = None;
    let mut segment = 0u32;
    loop {
        let mut buf = SegmentBuf::new(chunks_per_segment);
        let eof = jobs.drive(reader.fill(&mut buf)).await??;
        if segment == 0 && eof && buf.plain < inline_threshold {
            let cipher = cipher.clone();
            inline = Some(
                tokio::task::spawn_blocking(move || buf.seal(&cipher, 0, true))
                    .await??
                    .into_vec(),
            );
            break;
        }
        // Later segments are large whatever their length: straight into a pooled buffer.
        reader.inline_limit = 0;
        // One segment is encoded at a time, but the next one starts while the fragments of the
        // previous are still being written: the CPU is not left idle for the disk's tail.
        if let Some(previous) = encoded_rx.take() {
            let _ = jobs.drive(previous).await?;
        }
        let (encoded, encoded_next) = oneshot::channel();
        let job = SegmentJob {
            svc: svc.clone(),
            cipher: cipher.clone(),
            profile: w.profile.clone(),
            segment,
            last: eof,
            seed: format!("{}/{segment}", w.placement_seed),
            written: guard.written.clone(),
        };
        jobs.push(job.run(buf, encoded, reader.budget.clone()).boxed())
            .await?;
        encoded_rx = Some(encoded_next);
        if eof {
            break;
        }
        segment += 1;
    }
    let (segment_hashes, fragments) = jobs.finish().await?;
    drop(reader);
    let digests = hasher.await?;
    verify(&digests, w.content_md5, w.checksum)?;
    Ok(ExtentRecord {
        part: w.part,
        size: digests.len,
        md5: hex::encode(digests.md5),
        nonce_prefix: w.nonce_prefix,
        inline_data: inline,
        k: w.profile.k as u32,
        m: w.profile.m as u32,
        fragment_size: w.profile.fragment_size as u32,
        checksum: digests.checksum,
        created_ms: now_ms(),
        segment_hashes: Some(segment_hashes),
        fragments,
    })
}

fn verify(
    d: &Digests,
    content_md5: Option<[u8; 16]>,
    checksum: Option<ChecksumExpectation>,
) -> Result<()> {
    if content_md5.is_some_and(|m| m != d.md5) {
        return Err(Error::BadDigest {
            what: "Content-MD5",
        });
    }
    let Some(mut expect) = checksum else {
        return Ok(());
    };
    let expected = match (expect.expected.take(), expect.from_trailer.take()) {
        (Some(v), _) => Some(v),
        // An announced trailer that never came must not pass as "nothing to check".
        (None, Some(read)) => Some(read().ok_or(Error::MissingTrailer {
            header: expect.algorithm.header_name(),
        })?),
        (None, None) => None,
    };
    if let (Some(expected), Some(actual)) = (expected, &d.checksum) {
        expect.algorithm.validate(&expected)?;
        if expected != actual.value {
            return Err(Error::BadDigest {
                what: expect.algorithm.header_name(),
            });
        }
    }
    Ok(())
}

mod segment;
#[cfg(test)]
mod tests;

use segment::{Jobs, SegmentJob};
