//! The upload pipeline: body -> digests -> sealed chunks -> segments -> Reed-Solomon fragments
//! -> fragment stores, holding at most two segments of one upload in memory (one being filled
//! from the network while the previous one is encoded and written).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};

use super::digest::{ChecksumExpectation, Digests, Hasher};
use super::{ByteStream, Error, Inner, Result};
use crate::catalogue::{ExtentRecord, FragmentRecord, now_ms};
use crate::crypto::envelope::{CIPHER_CHUNK, NONCE_PREFIX_LEN, PLAIN_CHUNK, TAG_LEN};
use crate::crypto::{ChunkCipher, random_array};
use crate::erasure::{self, Profile};
use crate::store::FragmentHash;

/// Body frames queued for the hashing thread; bounds the memory a slow hasher can pin.
const HASH_QUEUE: usize = 256;

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
            for (store, hash) in written {
                let referenced = svc
                    .catalogue
                    .fragment_referenced(hash, &store)
                    .await
                    .unwrap_or(true);
                if !referenced && let Some(s) = svc.stores.by_id(&store) {
                    let _ = s.delete(hash).await;
                }
                svc.inflight.remove(&store, hash);
            }
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(cleanup);
        }
    }
}

/// Plaintext of (at most) one segment, laid out as sealed chunks will be: chunk `i` at
/// `i * CIPHER_CHUNK`, with room for its tag after it. Sealing then happens in place.
struct SegmentBuf {
    data: Vec<u8>,
    plain: usize,
    chunk_fill: usize,
    capacity: usize,
}

impl SegmentBuf {
    fn new(chunks: u64) -> Self {
        Self {
            data: Vec::new(),
            plain: 0,
            chunk_fill: 0,
            capacity: chunks as usize * PLAIN_CHUNK,
        }
    }

    fn is_full(&self) -> bool {
        self.plain == self.capacity
    }

    /// Copies as much of `src` as fits; returns how much.
    fn push(&mut self, src: &[u8], reserve: usize) -> usize {
        let mut taken = 0;
        while taken < src.len() && !self.is_full() {
            if self.chunk_fill == PLAIN_CHUNK {
                self.data.resize(self.data.len() + TAG_LEN, 0);
                self.chunk_fill = 0;
            }
            if self.data.len() >= reserve
                && self.data.capacity() < self.capacity + self.capacity / PLAIN_CHUNK * TAG_LEN
            {
                // Past the inline threshold this is a large object: allocate the segment once
                // instead of doubling through it.
                self.data
                    .reserve_exact(self.capacity / PLAIN_CHUNK * CIPHER_CHUNK - self.data.len());
            }
            let n = (PLAIN_CHUNK - self.chunk_fill).min(src.len() - taken);
            self.data.extend_from_slice(&src[taken..taken + n]);
            self.chunk_fill += n;
            self.plain += n;
            taken += n;
        }
        taken
    }

    /// Seals every chunk in place; `first_chunk` is the extent-wide index of chunk 0.
    fn seal(mut self, cipher: &ChunkCipher, first_chunk: u64, last: bool) -> Result<Vec<u8>> {
        self.data.resize(self.data.len() + TAG_LEN, 0);
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

struct Reader {
    body: ByteStream,
    carry: Option<Bytes>,
    hash_tx: tokio::sync::mpsc::Sender<Bytes>,
    total: u64,
    max_len: u64,
    reserve: usize,
}

impl Reader {
    /// Fills `buf` from the body; returns true when the body has ended.
    async fn fill(&mut self, buf: &mut SegmentBuf) -> Result<bool> {
        loop {
            if let Some(b) = self.carry.take() {
                let n = buf.push(&b, self.reserve);
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
            self.hash_tx
                .send(bytes.clone())
                .await
                .map_err(|_| Error::DataLoss("hashing thread stopped".into()))?;
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
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
    let algorithm = w.checksum.as_ref().map(|c| c.algorithm);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut h = Hasher::new(algorithm);
        while let Some(b) = hash_rx.blocking_recv() {
            h.update(&b);
        }
        h.finish()
    });
    let inline_threshold = svc.cfg.inline_threshold;
    let mut reader = Reader {
        body,
        carry: None,
        hash_tx,
        total: 0,
        max_len: w.max_len,
        reserve: inline_threshold,
    };
    let cipher = Arc::new(w.cipher);
    let chunks_per_segment = w.profile.chunks_per_segment();
    let mut fragments = Vec::new();
    let mut segment_hashes = Vec::new();
    let mut inline = None;
    let mut pending: Option<BoxFuture<'static, Result<StoredSegment>>> = None;
    let mut segment = 0u32;
    loop {
        let mut buf = SegmentBuf::new(chunks_per_segment);
        let eof = match pending.take() {
            None => reader.fill(&mut buf).await?,
            Some(previous) => {
                let (eof, stored) = tokio::join!(reader.fill(&mut buf), previous);
                let (hash, stored) = stored?;
                segment_hashes.push(hash);
                fragments.extend(stored);
                eof?
            }
        };
        if segment == 0 && eof && buf.plain < inline_threshold {
            let cipher = cipher.clone();
            inline = Some(tokio::task::spawn_blocking(move || buf.seal(&cipher, 0, true)).await??);
            break;
        }
        let job = SegmentJob {
            svc: svc.clone(),
            cipher: cipher.clone(),
            profile: w.profile.clone(),
            segment,
            last: eof,
            seed: format!("{}/{segment}", w.placement_seed),
            written: guard.written.clone(),
        };
        let stored = job.run(buf).boxed();
        if eof {
            let (hash, stored) = stored.await?;
            segment_hashes.push(hash);
            fragments.extend(stored);
            break;
        }
        pending = Some(stored);
        segment += 1;
    }
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
    let expected = match expect.expected.take() {
        Some(v) => Some(v),
        None => expect.from_trailer.take().and_then(|f| f()),
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

/// A stored segment: its CESS segment hash (SHA-256 of the sealed segment before padding) and
/// its fragments.
type StoredSegment = (FragmentHash, Vec<FragmentRecord>);

/// Encodes and stores one segment.
struct SegmentJob {
    svc: Arc<Inner>,
    cipher: Arc<ChunkCipher>,
    profile: Profile,
    segment: u32,
    last: bool,
    seed: String,
    written: Arc<Mutex<Vec<(String, FragmentHash)>>>,
}

impl SegmentJob {
    async fn run(self, buf: SegmentBuf) -> Result<StoredSegment> {
        let (k, m) = (self.profile.k, self.profile.m);
        let ranked = self.svc.stores.rank(self.seed.as_bytes());
        if ranked.len() < k + m {
            return Err(Error::NotEnoughStores {
                needed: k + m,
                healthy: ranked.len(),
            });
        }
        let _slot = self
            .svc
            .segment_slots
            .acquire()
            .await
            .expect("semaphore never closed");
        let codec = self.svc.codecs.get(k, m)?;
        let cipher = self.cipher.clone();
        let first_chunk = u64::from(self.segment) * self.profile.chunks_per_segment();
        let last = self.last;
        let (segment_hash, shards, hashes) = tokio::task::spawn_blocking(
            move || -> Result<(FragmentHash, Vec<Bytes>, Vec<FragmentHash>)> {
                let mut data = buf.seal(&cipher, first_chunk, last)?;
                let sealed_len = data.len();
                let f = sealed_len.div_ceil(k);
                data.resize(k * f, 0);
                let mut parity = vec![vec![0u8; f]; m];
                // Hashing is the costliest step (SHA-256 over the segment and every fragment):
                // it is spread over two threads, the segment hash beside the parity computation.
                let segment_hash = std::thread::scope(|scope| {
                    let hashing = scope.spawn(|| FragmentHash::of(&data[..sealed_len]));
                    let slices: Vec<&[u8]> = data.chunks(f).collect();
                    erasure::encode(&codec, &slices, &mut parity)?;
                    Ok::<_, Error>(hashing.join().expect("hashing thread"))
                })?;
                let data = Bytes::from(data);
                let shards: Vec<Bytes> = (0..k)
                    .map(|j| data.slice(j * f..(j + 1) * f))
                    .chain(parity.into_iter().map(Bytes::from))
                    .collect();
                let (front, back) = shards.split_at(shards.len() / 2);
                let hashes = std::thread::scope(|scope| {
                    let other = scope
                        .spawn(|| back.iter().map(|s| FragmentHash::of(s)).collect::<Vec<_>>());
                    let mut hashes: Vec<FragmentHash> =
                        front.iter().map(|s| FragmentHash::of(s)).collect();
                    hashes.extend(other.join().expect("hashing thread"));
                    hashes
                });
                Ok((segment_hash, shards, hashes))
            },
        )
        .await??;

        // Fragment i goes to the i-th ranked store; a failed write moves to the next spare.
        let spare = AtomicUsize::new(k + m);
        let (svc, written, segment) = (&self.svc, &self.written, self.segment);
        let writes = shards.into_iter().zip(hashes).enumerate().map(|(i, (shard, hash))| {
            let ranked = &ranked;
            let spare = &spare;
            async move {
                let mut store = ranked[i].clone();
                loop {
                    svc.inflight.add(store.id(), hash);
                    written.lock().expect("poisoned").push((store.id().to_string(), hash));
                    match store.put(hash, shard.clone()).await {
                        Ok(()) => {
                            return Ok(FragmentRecord {
                                segment,
                                idx: i as u32,
                                hash,
                                store: store.id().to_string(),
                            });
                        }
                        Err(e) => {
                            tracing::warn!(store = store.id(), error = %e, "fragment write failed; trying a spare store");
                            svc.stores.mark(store.id(), false);
                            let next = spare.fetch_add(1, Ordering::Relaxed);
                            store = ranked.get(next).cloned().ok_or(Error::Store(e))?;
                        }
                    }
                }
            }
        });
        let fragments: Result<Vec<FragmentRecord>> = futures::future::try_join_all(writes).await;
        Ok((segment_hash, fragments?))
    }
}
