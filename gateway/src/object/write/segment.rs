//! The segment jobs of an upload: each segment is sealed, hashed and Reed-Solomon encoded on a
//! blocking thread, then its fragments are written to their stores, while the next segment
//! fills (see `write`).

use super::*;

/// A stored segment: its CESS segment hash (SHA-256 of the sealed segment before padding) and
/// its fragments.
type StoredSegment = (FragmentHash, Vec<FragmentRecord>);

/// The segment jobs of one upload still running, in segment order, and the results of those
/// done. There are at most two: one encoding, and the one before it finishing its writes.
#[derive(Default)]
pub(super) struct Jobs {
    running: futures::stream::FuturesOrdered<BoxFuture<'static, Result<StoredSegment>>>,
    segment_hashes: Vec<FragmentHash>,
    fragments: Vec<FragmentRecord>,
}

impl Jobs {
    /// Adds the next job once fewer than two are running.
    pub(super) async fn push(
        &mut self,
        job: BoxFuture<'static, Result<StoredSegment>>,
    ) -> Result<()> {
        while self.running.len() >= 2 {
            let stored = self.running.next().await.expect("not empty");
            self.collect(stored)?;
        }
        self.running.push_back(job);
        Ok(())
    }

    fn collect(&mut self, stored: Result<StoredSegment>) -> Result<()> {
        let (hash, fragments) = stored?;
        self.segment_hashes.push(hash);
        self.fragments.extend(fragments);
        Ok(())
    }

    /// Awaits `until` while the running jobs make progress; a job that fails fails the upload
    /// at once.
    pub(super) async fn drive<T>(&mut self, until: impl Future<Output = T>) -> Result<T> {
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                biased;
                out = &mut until => return Ok(out),
                Some(stored) = self.running.next(), if !self.running.is_empty() => {
                    self.collect(stored)?;
                }
            }
        }
    }

    /// Waits for every job; returns the segment hashes and fragments, in segment order.
    pub(super) async fn finish(mut self) -> Result<(Vec<FragmentHash>, Vec<FragmentRecord>)> {
        while let Some(stored) = self.running.next().await {
            self.collect(stored)?;
        }
        Ok((self.segment_hashes, self.fragments))
    }
}

/// Encodes and stores one segment.
pub(super) struct SegmentJob {
    pub(super) svc: Arc<Inner>,
    pub(super) cipher: Arc<ChunkCipher>,
    pub(super) profile: Profile,
    pub(super) segment: u32,
    pub(super) last: bool,
    pub(super) seed: String,
    pub(super) written: Arc<Mutex<Vec<(String, FragmentHash)>>>,
}

/// A fragment that is encoded and named, ready to be written.
struct ReadyFragment {
    /// Index in the segment.
    idx: usize,
    bytes: Bytes,
    hash: FragmentHash,
    /// Its hold on the upload's memory budget, let go once it is written.
    share: Share,
}

impl SegmentJob {
    /// `encoded` is dropped (never sent on) when the encoding thread is done, so the next
    /// segment's job can start.
    pub(super) async fn run(
        self,
        buf: SegmentBuf,
        encoded: oneshot::Sender<()>,
        budget: UploadBudget,
    ) -> Result<StoredSegment> {
        let (k, m) = (self.profile.k, self.profile.m);
        let ranked = self.svc.stores.rank(self.seed.as_bytes());
        if ranked.len() < k + m {
            return Err(Error::NotEnoughStores {
                needed: k + m,
                healthy: ranked.len(),
            });
        }
        // Shared with the encoding thread: if this job is dropped (a failed write, a cancelled
        // upload), the thread still holds the segment's buffers until it finishes, and the
        // slot with them.
        let slot = Arc::new(
            self.svc
                .segment_slots
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed"),
        );
        let encoding = Encoding {
            codec: self.svc.codecs.get(k, m)?,
            cipher: self.cipher.clone(),
            first_chunk: u64::from(self.segment) * self.profile.chunks_per_segment(),
            last: self.last,
            k,
            m,
            fragment_size: self.profile.fragment_size,
            pool: self.svc.buffers.clone(),
            budget,
        };
        // Fragments are written as soon as they are named, while the rest of the segment is
        // still being encoded: the data fragments go to disk during the parity computation.
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel::<ReadyFragment>();
        let encoding_slot = slot.clone();
        let compute = tokio::task::spawn_blocking(move || {
            let _slot = encoding_slot;
            let _encoded = encoded;
            encoding.run(buf, &ready_tx)
        });
        let spare = AtomicUsize::new(k + m);
        let mut writes = futures::stream::FuturesUnordered::new();
        let mut fragments = Vec::with_capacity(k + m);
        loop {
            tokio::select! {
                Some(fragment) = ready.recv() => {
                    writes.push(self.write_fragment(&ranked, &spare, fragment));
                }
                Some(written) = writes.next(), if !writes.is_empty() => fragments.push(written?),
                else => break,
            }
        }
        drop(writes);
        let segment_hash = compute.await??;
        drop(slot); // encoded and written
        fragments.sort_by_key(|f: &FragmentRecord| f.idx);
        Ok((segment_hash, fragments))
    }

    /// Writes a fragment, then lets go of its budget share.
    async fn write_fragment(
        &self,
        ranked: &[Arc<dyn crate::store::FragmentStore>],
        spare: &AtomicUsize,
        fragment: ReadyFragment,
    ) -> Result<FragmentRecord> {
        let ReadyFragment {
            idx,
            bytes,
            hash,
            share,
        } = fragment;
        let written = self.store_fragment(ranked, spare, idx, bytes, hash).await;
        // Only now that the bytes have been dropped (back in the pool, if they were the last
        // view of their buffer): whoever waits for the share finds the buffer there to reuse
        // instead of mapping another.
        drop(share);
        written
    }

    /// Writes fragment `i` to the i-th ranked store; a failed write moves to the next spare.
    async fn store_fragment(
        &self,
        ranked: &[Arc<dyn crate::store::FragmentStore>],
        spare: &AtomicUsize,
        i: usize,
        shard: Bytes,
        hash: FragmentHash,
    ) -> Result<FragmentRecord> {
        let mut store = ranked[i].clone();
        loop {
            self.svc.inflight.add(store.id(), hash);
            self.written
                .lock()
                .expect("poisoned")
                .push((store.id().to_string(), hash));
            // A store that hangs would hold this upload, and its share of the upload memory,
            // forever: past the timeout the write counts as failed and is dropped, which lets
            // go of the fragment's memory (the store may still hold its bytes for a while:
            // `store::blocking` bounds how many).
            let timeout = self.svc.cfg.fragment_write_timeout;
            let put = tokio::time::timeout(timeout, store.put(hash, shard.clone()));
            let result = put.await.unwrap_or_else(|_| {
                Err(StoreError::TimedOut {
                    store: store.id().to_string(),
                    operation: "write",
                    after: timeout,
                })
            });
            match result {
                Ok(()) => {
                    return Ok(FragmentRecord {
                        segment: self.segment,
                        idx: i as u32,
                        hash,
                        store: store.id().to_string(),
                    });
                }
                Err(e) => {
                    tracing::warn!(store = store.id(), error = %e, "fragment write failed; trying a spare store");
                    self.svc.stores.mark(store.id(), false);
                    let next = spare.fetch_add(1, Ordering::Relaxed);
                    store = ranked.get(next).cloned().ok_or(Error::Store(e))?;
                }
            }
        }
    }
}

/// The CPU side of storing a segment: seal, hash, Reed-Solomon encode.
struct Encoding {
    codec: Arc<erasure::Codec>,
    cipher: Arc<ChunkCipher>,
    first_chunk: u64,
    last: bool,
    k: usize,
    m: usize,
    fragment_size: usize,
    pool: BufferPool,
    budget: UploadBudget,
}

impl Encoding {
    /// Seals and encodes the segment on two threads, handing each fragment to `ready` as soon as
    /// it is named; returns the segment hash. Hashing is the costliest step (SHA-256 over the
    /// segment and over every fragment), so the work is split evenly: one thread hashes the
    /// data fragments, computes the parity and hashes half of it; the other hashes the whole
    /// segment, then the other half of the parity.
    fn run(
        self,
        mut buf: SegmentBuf,
        ready: &tokio::sync::mpsc::UnboundedSender<ReadyFragment>,
    ) -> Result<FragmentHash> {
        let (k, m) = (self.k, self.m);
        // Held by this thread and by every data fragment until it is written. Declared before
        // `segment`, so this thread lets go of it only after the segment's bytes.
        let segment_share: Share = buf.share.take().map(Arc::new);
        let mut sealed = buf.seal(&self.cipher, self.first_chunk, self.last)?;
        let sealed_len = sealed.len();
        let f = sealed_len.div_ceil(k);
        sealed.resize(k * f);
        let segment = sealed.into_bytes();
        // A closed channel means the upload already failed; the fragments are then not needed.
        let name_and_send = |first: usize, shards: Vec<(Bytes, Share)>| {
            let views: Vec<&[u8]> = shards.iter().map(|(s, _)| s.as_ref()).collect();
            let hashes = FragmentHash::of_many(&views);
            for (j, ((bytes, share), hash)) in shards.into_iter().zip(hashes).enumerate() {
                let _ = ready.send(ReadyFragment {
                    idx: first + j,
                    bytes,
                    hash,
                    share,
                });
            }
        };
        std::thread::scope(|scope| {
            let (parity_tx, parity_rx) = std::sync::mpsc::channel();
            let name_and_send = &name_and_send;
            let segment = &segment;
            let helper = scope.spawn(move || {
                let segment_hash = FragmentHash::of(&segment[..sealed_len]);
                if let Ok((first, half)) = parity_rx.recv() {
                    name_and_send(first, half);
                }
                segment_hash
            });
            let data: Vec<Bytes> = (0..k).map(|j| segment.slice(j * f..(j + 1) * f)).collect();
            let held = data.iter().map(|d| (d.clone(), segment_share.clone()));
            name_and_send(0, held.collect());
            let views: Vec<&[u8]> = data.iter().map(|s| s.as_ref()).collect();
            // Waits while the previous segment's parity is still being written, or while other
            // uploads hold all of the gateway's room for parity.
            let shares = self.budget.parity_blocking();
            // Every byte of the parity is written by the encoder: a reused buffer is not cleared.
            let mut parity: Vec<PooledBuf> = (0..m)
                .map(|_| {
                    let mut p = self.pool.take(self.fragment_size).map_err(Error::Buffers)?;
                    p.resize_for_overwrite(f);
                    Ok(p)
                })
                .collect::<Result<_>>()?;
            let mut outputs: Vec<&mut [u8]> = parity.iter_mut().map(|p| &mut p[..]).collect();
            erasure::encode(&self.codec, &views, &mut outputs)?;
            let mut parity: Vec<(Bytes, Share)> = parity
                .into_iter()
                .map(PooledBuf::into_bytes)
                .zip(shares.into_iter().map(|s| Some(Arc::new(s))))
                .collect();
            let theirs = parity.split_off(m.div_ceil(2));
            let mine = parity.len();
            let _ = parity_tx.send((k + mine, theirs));
            name_and_send(k, parity);
            Ok(helper.join().expect("hashing thread"))
        })
    }
}
