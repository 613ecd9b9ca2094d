//! How much fragment data reads hold: one memory for all reads together
//! (`limits.read_buffer_mib`), as uploads have theirs. Without it every GET fetched a few units
//! ahead of its client and a degraded one rebuilt whole segments, so memory grew with the number
//! of concurrent reads.
//!
//! What is held, and for how long:
//! - a read unit (a few MiB of one segment) holds its ciphertext from before it is fetched until
//!   its plaintext, decrypted in place, has been handed to the client and dropped;
//! - a rebuild holds its k fragments and the segment buffer, and, once the segment is decoded,
//!   the segment until the last unit taken from it is dropped.
//!
//! A read that finds no room waits; it never fails for want of memory. A request larger than
//! the whole memory (a rebuild of a profile whose segments do not fit) takes all of it, and so
//! runs alone instead of waiting forever. Reads take their room in the order they deliver
//! bytes, and let go of everything queued behind a unit before that unit waits for more (see
//! `read`): nothing a read holds then depends on what it waits for, so reads cannot deadlock
//! each other.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::buffers::PooledBuf;

/// The read memory of the whole gateway, counted in KiB.
#[derive(Debug, Clone)]
pub(crate) struct ReadMemory {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl ReadMemory {
    pub(crate) fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from((bytes / 1024).max(1)).unwrap_or(u32::MAX);
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Room for `bytes`, or for the whole memory if that is less; waits until there is.
    pub(crate) fn take(&self, bytes: usize) -> BoxFuture<'static, ReadHold> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        let kib_pool = self.kib.clone();
        Box::pin(async move {
            let permit = kib_pool.acquire_many_owned(kib).await;
            ReadHold {
                permit: Some(permit.expect("semaphore never closed")),
            }
        })
    }

    /// Bytes held by reads right now.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        (self.total_kib as usize - self.kib.available_permits()) * 1024
    }
}

/// Read memory held, given back when dropped.
#[derive(Debug, Default)]
pub(crate) struct ReadHold {
    permit: Option<OwnedSemaphorePermit>,
}

impl ReadHold {
    /// Holds nothing (for bytes that are accounted elsewhere, or small enough not to matter).
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Keeps room for `bytes` (or all that is held, if less) and gives the rest back: for what
    /// outlives a step that needed more (the segment a rebuild leaves behind).
    pub(crate) fn keep(mut self, bytes: usize) -> ReadHold {
        let Some(permit) = &mut self.permit else {
            return self;
        };
        let kib = bytes.div_ceil(1024).min(permit.num_permits());
        Self {
            permit: permit.split(kib),
        }
    }

    /// `buf`'s bytes in `window`, holding this memory until the last view of them is dropped
    /// (by the client's connection, once sent).
    pub(crate) fn attach(self, buf: PooledBuf, window: std::ops::Range<usize>) -> Bytes {
        if self.permit.is_none() {
            return buf.into_bytes().slice(window);
        }
        Bytes::from_owner(Held { buf, _hold: self }).slice(window)
    }
}

struct Held {
    buf: PooledBuf,
    _hold: ReadHold,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Room comes back when the last view of the bytes holding it is dropped; a request larger
    /// than the whole memory takes all of it and waits for nothing else.
    #[tokio::test]
    async fn holds_follow_the_bytes_and_oversize_requests_run_alone() {
        let memory = ReadMemory::new(8 * 1024 * 1024);
        let hold = memory.take(6 * 1024 * 1024).await;
        let hold = hold.keep(4 * 1024 * 1024);
        assert_eq!(memory.held_bytes(), 4 * 1024 * 1024);
        let bytes = hold.attach(PooledBuf::unpooled(vec![7; 100]), 10..20);
        let view = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(
            memory.held_bytes(),
            4 * 1024 * 1024,
            "a view is still alive"
        );
        let oversize = memory.take(100 * 1024 * 1024);
        tokio::pin!(oversize);
        assert!(futures::poll!(oversize.as_mut()).is_pending());
        drop(view);
        let all = oversize.await;
        assert_eq!(memory.held_bytes(), 8 * 1024 * 1024);
        drop(all);
        assert_eq!(memory.held_bytes(), 0);
    }
}
