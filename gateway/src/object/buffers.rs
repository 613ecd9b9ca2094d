//! Segment-sized buffers reused across uploads.
//!
//! An upload cycles through a few large buffers per segment (the segment being filled, the one
//! being encoded, its parity fragments). Allocating and freeing them each time let the allocator
//! keep freed blocks mapped while it handed out fresh ones: peak RSS of one 1 GiB upload varied
//! between 260 and 330 MiB for ~150 MiB of live buffers, and the page faults on fresh memory cost
//! throughput. Reusing them makes the footprint what the pipeline actually holds.
//!
//! Buffers are keyed by capacity (a profile's segment or fragment size) and start on a block
//! boundary, so that fragments cut from them go to disk with O_DIRECT without a copy (the
//! allocator's alignment of large blocks is not to be relied on: measured here, leaving it to
//! chance copied ~7% of all CPU time away). Idle ones are kept, up to a byte budget, only while
//! some upload is using the pool: when the last one ends they are all released.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use crate::store::DIRECT_ALIGN;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

#[derive(Debug, Default)]
struct Shelves {
    /// capacity -> idle buffers (with their aligned start).
    free: HashMap<usize, Vec<(Vec<u8>, usize)>>,
    idle_bytes: usize,
    /// Uploads holding a [`PoolUser`].
    users: usize,
}

#[derive(Debug)]
struct Shared {
    shelves: Mutex<Shelves>,
    idle_limit: usize,
}

/// A pool of large byte buffers; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct BufferPool {
    shared: Arc<Shared>,
}

impl BufferPool {
    /// A pool that keeps at most `idle_limit` bytes of unused buffers.
    pub(crate) fn new(idle_limit: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                shelves: Mutex::default(),
                idle_limit,
            }),
        }
    }

    /// A buffer with room for `capacity` bytes. Its length and contents are whatever its last
    /// user left: callers clear it, or overwrite every byte they use.
    pub(crate) fn take(&self, capacity: usize) -> PooledBuf {
        let reused = {
            let mut shelves = self.shared.shelves.lock().expect("poisoned");
            let buf = shelves.free.get_mut(&capacity).and_then(Vec::pop);
            if buf.is_some() {
                shelves.idle_bytes -= capacity;
            }
            buf
        };
        let (vec, start) = match reused {
            Some((vec, start)) => (vec, start),
            None => {
                // Over-allocate by one block; the buffer starts at the first block boundary.
                let mut vec: Vec<u8> = Vec::with_capacity(capacity + DIRECT_ALIGN);
                let start = vec.as_ptr().align_offset(DIRECT_ALIGN);
                vec.resize(start, 0);
                (vec, start)
            }
        };
        PooledBuf {
            vec,
            start,
            home: Some((self.shared.clone(), capacity)),
        }
    }

    /// Marks an upload as using the pool until the returned guard drops.
    pub(crate) fn user(&self) -> PoolUser {
        self.shared.shelves.lock().expect("poisoned").users += 1;
        PoolUser {
            shared: self.shared.clone(),
        }
    }

    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.shared.shelves.lock().expect("poisoned").idle_bytes
    }
}

impl Shared {
    fn give_back(&self, capacity: usize, vec: Vec<u8>, start: usize) {
        if vec.capacity() != capacity + DIRECT_ALIGN {
            return; // grown past its class by its user: no longer aligned, nor the right size
        }
        let mut shelves = self.shelves.lock().expect("poisoned");
        if shelves.users == 0 || shelves.idle_bytes + capacity > self.idle_limit {
            return;
        }
        shelves.idle_bytes += capacity;
        shelves.free.entry(capacity).or_default().push((vec, start));
    }
}

/// An upload using the pool; when the last one drops, idle buffers are released.
#[derive(Debug)]
pub(crate) struct PoolUser {
    shared: Arc<Shared>,
}

impl Drop for PoolUser {
    fn drop(&mut self) {
        let mut shelves = self.shared.shelves.lock().expect("poisoned");
        shelves.users -= 1;
        if shelves.users == 0 {
            shelves.free.clear();
            shelves.idle_bytes = 0;
        }
    }
}

/// A growable byte buffer that goes back to its pool when dropped (or, turned into [`Bytes`],
/// when the last view of it is dropped). Dereferences to the bytes it holds.
#[derive(Debug)]
pub(crate) struct PooledBuf {
    /// Bytes `..start` are alignment padding, not part of the buffer.
    vec: Vec<u8>,
    start: usize,
    home: Option<(Arc<Shared>, usize)>,
}

impl PooledBuf {
    /// A plain buffer outside any pool: small uploads never take a segment-sized one.
    pub(crate) fn unpooled(vec: Vec<u8>) -> Self {
        Self {
            vec,
            start: 0,
            home: None,
        }
    }

    pub(crate) fn is_pooled(&self) -> bool {
        self.home.is_some()
    }

    pub(crate) fn clear(&mut self) {
        self.vec.truncate(self.start);
    }

    pub(crate) fn extend_from_slice(&mut self, src: &[u8]) {
        self.vec.extend_from_slice(src);
    }

    /// Grows (zero-filling) or shrinks to `len` bytes.
    pub(crate) fn resize(&mut self, len: usize) {
        self.vec.resize(self.start + len, 0);
    }

    /// Shares the buffer's contents as `Bytes`; the buffer returns to the pool when the last
    /// slice of them is dropped.
    pub(crate) fn into_bytes(self) -> Bytes {
        if self.home.is_none() {
            return Bytes::from(self.into_vec());
        }
        Bytes::from_owner(self)
    }

    /// The bytes, leaving the pool for good (for data that outlives the upload, like inline
    /// objects kept in the catalogue).
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        self.home = None;
        let mut vec = std::mem::take(&mut self.vec);
        vec.drain(..self.start);
        vec
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some((shared, capacity)) = self.home.take() {
            shared.give_back(capacity, std::mem::take(&mut self.vec), self.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_are_reused() {
        let pool = BufferPool::new(1 << 20);
        let _upload = pool.user();
        let mut a = pool.take(4096);
        a.clear();
        a.extend_from_slice(b"hello");
        let ptr = a.as_ptr();
        assert_eq!(
            ptr.align_offset(DIRECT_ALIGN),
            0,
            "pooled buffers start on a block"
        );
        let bytes = a.into_bytes();
        let view = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "a live slice keeps the buffer out");
        assert_eq!(&view[..], b"el");
        drop(view);
        assert_eq!(pool.idle_bytes(), 4096);
        let b = pool.take(4096);
        assert_eq!(b.as_ptr(), ptr, "the same allocation is handed out again");
        assert_eq!(pool.idle_bytes(), 0);
        let mut c = pool.take(8192);
        c.resize(8192);
        assert!(c.iter().all(|&b| b == 0), "new buffers grow zero-filled");
        assert_eq!(c.as_ptr().align_offset(DIRECT_ALIGN), 0);
    }

    #[test]
    fn idle_buffers_are_bounded_and_released_after_the_last_upload() {
        let pool = BufferPool::new(10_000);
        let first = pool.user();
        let second = pool.user();
        let bufs: Vec<PooledBuf> = (0..3).map(|_| pool.take(4096)).collect();
        drop(bufs);
        assert_eq!(
            pool.idle_bytes(),
            8192,
            "the third buffer is over the idle limit"
        );
        drop(first);
        assert_eq!(pool.idle_bytes(), 8192, "an upload is still running");
        drop(second);
        assert_eq!(pool.idle_bytes(), 0);
        drop(pool.take(4096));
        assert_eq!(pool.idle_bytes(), 0, "nothing is kept while no upload runs");
    }

    #[test]
    fn leaving_the_pool() {
        let pool = BufferPool::new(1 << 20);
        let mut a = pool.take(4096);
        a.clear();
        a.extend_from_slice(&[7]);
        assert_eq!(a.into_vec(), vec![7]);
        assert_eq!(pool.idle_bytes(), 0);
        let plain = PooledBuf::unpooled(vec![1, 2]);
        assert!(!plain.is_pooled());
        assert_eq!(&plain.into_bytes()[..], &[1, 2]);
    }
}
