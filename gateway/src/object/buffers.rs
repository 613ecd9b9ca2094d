//! Segment-sized buffers for uploads, mapped straight from the kernel and reused.
//!
//! An upload cycles through a few large buffers per segment (the segment being filled, the one
//! being encoded, its parity fragments). From the allocator they behaved badly: freed blocks
//! stayed mapped while fresh ones were handed out (peak RSS of one 1 GiB upload swung between
//! 250 and 330 MiB for ~130 MiB of live buffers), alignment for O_DIRECT was left to chance
//! (a copy before every unaligned fragment write cost ~7% of upload CPU), and the page faults
//! on fresh memory cost throughput.
//!
//! So each buffer is an anonymous mapping of its own: page-aligned, backed by transparent huge
//! pages where the kernel allows (fewer faults and TLB misses over 32 MiB passes), reused
//! across the segments of an upload, and unmapped, returning its memory at once, when no
//! upload needs it any more. Buffers are keyed by capacity (a profile's segment or fragment
//! size); idle ones are kept, up to a byte budget, only while some upload holds a
//! [`PoolUser`]. Small uploads never take one: their bytes stay on the heap.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::MmapMut;

use crate::store::DIRECT_ALIGN;

#[derive(Debug, Default)]
struct Shelves {
    /// capacity -> idle mappings.
    free: HashMap<usize, Vec<MmapMut>>,
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

    /// An empty buffer with room for at least `capacity` bytes.
    pub(crate) fn take(&self, capacity: usize) -> std::io::Result<PooledBuf> {
        let reused = {
            let mut shelves = self.shared.shelves.lock().expect("poisoned");
            let map = shelves.free.get_mut(&capacity).and_then(Vec::pop);
            if map.is_some() {
                shelves.idle_bytes -= capacity;
            }
            map
        };
        let map = match reused {
            Some(map) => map,
            None => {
                // A page of slack: a segment whose sealed length is not a multiple of k is
                // padded up to k equal fragments, a few bytes past the nominal capacity.
                let map =
                    MmapMut::map_anon(capacity.next_multiple_of(DIRECT_ALIGN) + DIRECT_ALIGN)?;
                // Only a hint; without transparent huge pages the buffer works the same.
                let _ = map.advise(memmap2::Advice::HugePage);
                map
            }
        };
        Ok(PooledBuf {
            bytes: Storage::Mapped(map),
            len: 0,
            home: Some((self.shared.clone(), capacity)),
        })
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
    fn give_back(&self, capacity: usize, map: MmapMut) {
        let mut shelves = self.shelves.lock().expect("poisoned");
        if shelves.users == 0 || shelves.idle_bytes + capacity > self.idle_limit {
            return; // unmapped here, its memory returned to the system
        }
        shelves.idle_bytes += capacity;
        shelves.free.entry(capacity).or_default().push(map);
    }
}

/// An upload using the pool; when the last one drops, idle buffers are unmapped.
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

#[derive(Debug)]
enum Storage {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

/// A byte buffer of bounded capacity that goes back to its pool when dropped (or, turned into
/// [`Bytes`], when the last view of it is dropped). Dereferences to the bytes it holds.
#[derive(Debug)]
pub(crate) struct PooledBuf {
    bytes: Storage,
    /// Bytes in use (for `Heap`, always the vector's length).
    len: usize,
    home: Option<(Arc<Shared>, usize)>,
}

impl PooledBuf {
    /// A plain heap buffer outside any pool, growing as needed: small uploads never take a
    /// segment-sized one.
    pub(crate) fn unpooled(vec: Vec<u8>) -> Self {
        Self {
            len: vec.len(),
            bytes: Storage::Heap(vec),
            home: None,
        }
    }

    pub(crate) fn is_pooled(&self) -> bool {
        matches!(self.bytes, Storage::Mapped(_))
    }

    /// Appends `src`. A pooled buffer never grows past its mapping: callers stay within the
    /// capacity they asked for.
    pub(crate) fn extend_from_slice(&mut self, src: &[u8]) {
        match &mut self.bytes {
            Storage::Heap(v) => v.extend_from_slice(src),
            Storage::Mapped(m) => m[self.len..self.len + src.len()].copy_from_slice(src),
        }
        self.len += src.len();
    }

    /// Grows (zero-filling) or shrinks to `len` bytes.
    pub(crate) fn resize(&mut self, len: usize) {
        self.truncate_or_fill(len, true);
    }

    /// Grows or shrinks to `len` bytes, leaving whatever a previous user wrote in the bytes it
    /// exposes: for buffers that are about to be overwritten whole (parity fragments).
    pub(crate) fn resize_for_overwrite(&mut self, len: usize) {
        self.truncate_or_fill(len, false);
    }

    fn truncate_or_fill(&mut self, len: usize, zero: bool) {
        match &mut self.bytes {
            Storage::Heap(v) => v.resize(len, 0),
            Storage::Mapped(m) => {
                if zero && len > self.len {
                    m[self.len..len].fill(0);
                }
                assert!(len <= m.len(), "pooled buffer overflow");
            }
        }
        self.len = len;
    }

    /// Shares the buffer's contents as `Bytes`; a pooled buffer returns to the pool when the
    /// last slice of them is dropped.
    pub(crate) fn into_bytes(self) -> Bytes {
        if self.is_pooled() {
            Bytes::from_owner(self)
        } else {
            Bytes::from(self.into_vec())
        }
    }

    /// The bytes as a vector (for data that outlives the upload, like inline objects kept in
    /// the catalogue); a pooled buffer is copied out and returned.
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        match &mut self.bytes {
            Storage::Heap(v) => std::mem::take(v),
            Storage::Mapped(m) => m[..self.len].to_vec(),
        }
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Storage::Heap(v) => v,
            Storage::Mapped(m) => &m[..self.len],
        }
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.bytes {
            Storage::Heap(v) => v,
            Storage::Mapped(m) => &mut m[..self.len],
        }
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let Some((shared, capacity)) = self.home.take() else {
            return; // a heap buffer
        };
        if let Storage::Mapped(map) = std::mem::replace(&mut self.bytes, Storage::Heap(Vec::new()))
        {
            shared.give_back(capacity, map);
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
        let mut a = pool.take(4096).unwrap();
        assert!(a.is_empty());
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
        let mut b = pool.take(4096).unwrap();
        assert_eq!(b.as_ptr(), ptr, "the same mapping is handed out again");
        assert_eq!(pool.idle_bytes(), 0);
        b.resize_for_overwrite(5);
        assert_eq!(
            &b[..],
            b"hello",
            "overwrite-sized buffers keep what was there"
        );
        b.resize(0);
        b.resize(5);
        assert_eq!(&b[..], &[0; 5], "resize zero-fills");
        let mut c = pool.take(8192).unwrap();
        c.resize(8192 + 10);
        assert!(
            c.iter().all(|&x| x == 0),
            "a page of slack past the capacity"
        );
    }

    #[test]
    fn idle_buffers_are_bounded_and_released_after_the_last_upload() {
        let pool = BufferPool::new(10_000);
        let first = pool.user();
        let second = pool.user();
        let bufs: Vec<PooledBuf> = (0..3).map(|_| pool.take(4096).unwrap()).collect();
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
        drop(pool.take(4096).unwrap());
        assert_eq!(pool.idle_bytes(), 0, "nothing is kept while no upload runs");
    }

    #[test]
    fn leaving_the_pool() {
        let pool = BufferPool::new(1 << 20);
        let _upload = pool.user();
        let mut a = pool.take(4096).unwrap();
        a.extend_from_slice(&[7]);
        assert_eq!(a.into_vec(), vec![7]);
        assert_eq!(pool.idle_bytes(), 4096, "the mapping itself goes back");
        let plain = PooledBuf::unpooled(vec![1, 2]);
        assert!(!plain.is_pooled());
        assert_eq!(&plain.into_bytes()[..], &[1, 2]);
    }
}
