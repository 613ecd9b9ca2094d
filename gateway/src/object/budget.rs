//! How much buffer memory uploads hold: each upload at most two segments (one being filled, one
//! being encoded) and one set of parity fragments, and all uploads together at most the
//! gateway's upload memory (`limits.upload_buffer_mib`). An upload that finds no room waits, and
//! reads no more of its body meanwhile, so TCP pushes back on the client.
//!
//! Memory is held, and given back, where it is actually used: a segment's once it is encoded and
//! all its data fragments are written, a parity fragment's once that fragment is written. Not when
//! the bytes are dropped: a store may keep them, and the upload would then wait forever.
//!
//! Segments and parity are counted apart at both levels:
//! - per upload, because the buffer pool reuses a buffer only for its own size: lending a
//!   segment the room parity had just freed maps a third segment buffer all the same;
//! - across uploads, because a segment is let go only after its parity was computed: segments
//!   holding all the memory would wait forever for parity room.
//!
//! Without the per-upload cap a fast network had a third segment filled while the one before the
//! last was still being written, and a 10 GiB upload peaked 40 MiB higher for no gain in
//! throughput. Without the shared one, four concurrent uploads held ~600 MiB.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::crypto::envelope::CIPHER_CHUNK;
use crate::erasure::Profile;

/// The upload memory of the whole gateway, in KiB: half for segments, half for parity.
#[derive(Debug, Clone)]
pub(crate) struct UploadMemory {
    segments_kib: Arc<Semaphore>,
    parity_kib: Arc<Semaphore>,
    /// The size of each half, the most one request may take: a profile whose segment is larger
    /// than that takes the whole half rather than waiting forever.
    half_kib: u32,
}

impl UploadMemory {
    pub(crate) fn new(bytes: usize) -> Self {
        let half_kib = u32::try_from((bytes / 2 / 1024).max(1)).unwrap_or(u32::MAX);
        Self {
            segments_kib: Arc::new(Semaphore::new(half_kib as usize)),
            parity_kib: Arc::new(Semaphore::new(half_kib as usize)),
            half_kib,
        }
    }

    /// Room for one upload of `profile`.
    pub(crate) fn budget(&self, profile: &Profile) -> UploadBudget {
        let kib = |bytes: usize| u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let segment = profile.chunks_per_segment() as usize * CIPHER_CHUNK;
        UploadBudget {
            segments: Arc::new(Semaphore::new(2)),
            parity: Arc::new(Semaphore::new(profile.m)),
            m: profile.m as u32,
            segment_kib: kib(segment).min(self.half_kib),
            parity_kib: kib(profile.m * profile.fragment_size).min(self.half_kib),
            shared: self.clone(),
        }
    }
}

/// Memory held for one buffer, given back when dropped.
#[derive(Debug)]
pub(crate) struct Hold {
    _upload: OwnedSemaphorePermit,
    _shared: OwnedSemaphorePermit,
}

/// The memory one upload may hold (see the module docs); cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct UploadBudget {
    segments: Arc<Semaphore>,
    parity: Arc<Semaphore>,
    m: u32,
    segment_kib: u32,
    parity_kib: u32,
    shared: UploadMemory,
}

impl UploadBudget {
    /// Room for a segment; waits while the upload holds two, or the gateway has none.
    pub(crate) async fn segment(&self) -> Hold {
        let upload = self.segments.clone().acquire_owned().await;
        let upload = upload.expect("semaphore never closed");
        let shared = self.shared.segments_kib.clone();
        let shared = shared.acquire_many_owned(self.segment_kib).await;
        Hold {
            _upload: upload,
            _shared: shared.expect("semaphore never closed"),
        }
    }

    /// Room for each parity fragment of a segment, taken together; blocks the calling thread
    /// (an encoding thread) while the upload's previous parity is still held, or the gateway
    /// has no room.
    pub(crate) fn parity_blocking(&self) -> Vec<Hold> {
        let runtime = tokio::runtime::Handle::current();
        let upload = runtime
            .block_on(self.parity.clone().acquire_many_owned(self.m))
            .expect("semaphore never closed");
        let shared = self.shared.parity_kib.clone();
        let shared = runtime
            .block_on(shared.acquire_many_owned(self.parity_kib))
            .expect("semaphore never closed");
        split_evenly(upload, self.m as usize)
            .into_iter()
            .zip(split_evenly(shared, self.m as usize))
            .map(|(upload, shared)| Hold {
                _upload: upload,
                _shared: shared,
            })
            .collect()
    }
}

/// `permit` in `parts` equal permits (the last takes any remainder).
fn split_evenly(mut permit: OwnedSemaphorePermit, parts: usize) -> Vec<OwnedSemaphorePermit> {
    let each = permit.num_permits() / parts;
    let mut split: Vec<_> = (1..parts)
        .map(|_| permit.split(each).expect("enough permits"))
        .collect();
    split.push(permit);
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile larger than half the gateway's memory takes the whole half instead of waiting
    /// forever, and the next segment waits until it is given back.
    #[tokio::test]
    async fn oversized_requests_take_the_whole_half() {
        let memory = UploadMemory::new(16 * 1024 * 1024);
        let budget = memory.budget(&Profile::parse("cess").unwrap());
        let first = budget.segment().await;
        let second = budget.segment();
        tokio::pin!(second);
        assert!(futures::poll!(second.as_mut()).is_pending());
        drop(first);
        let _second = second.await;
        let for_parity = budget.clone();
        let parity = tokio::task::spawn_blocking(move || for_parity.parity_blocking())
            .await
            .unwrap();
        assert_eq!(parity.len(), 8);
    }

    /// Two segments per upload; a third waits for one of them.
    #[tokio::test]
    async fn an_upload_holds_two_segments() {
        let memory = UploadMemory::new(1 << 30);
        let budget = memory.budget(&Profile::parse("cess").unwrap());
        let a = budget.segment().await;
        let _b = budget.segment().await;
        let third = budget.segment();
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(a);
        let _c = third.await;
        // Another upload is not held back by this one's cap.
        let _other = memory
            .budget(&Profile::parse("cess").unwrap())
            .segment()
            .await;
    }
}
