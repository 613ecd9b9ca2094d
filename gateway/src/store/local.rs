//! Fragment store in a local directory: `<root>/<first two hex digits>/<hash>`.
//!
//! A fragment is written to `<root>/.tmp/`, synced, then renamed into place and the directory
//! synced, so a crash leaves either no fragment or a whole one (a stray temp file at worst, which
//! the next start removes). Writes use O_DIRECT from a block-aligned buffer where the filesystem
//! allows it: fragments are written once and read rarely, and measured here that doubles write
//! throughput and takes a third of the kernel CPU of going through the page cache.
//!
//! Every operation runs on a blocking thread, at most [`IO_SLOTS`] of them per store at once
//! (see [`BlockingIo`]): a hung disk holds that many threads and no more.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::blocking::BlockingIo;
use super::{DIRECT_ALIGN, FragmentHash, FragmentStore, StoreError, StoredFragment};

const TMP_DIR: &str = ".tmp";

/// Blocking operations one store runs at once. Healthy traffic stays under it (uploads write at
/// most `limits.max_segments_in_flight` fragments to a store at once, a read four ranges); a
/// hung disk holds this many threads, and the buffers they read into or write from.
pub const IO_SLOTS: usize = 8;

#[derive(Debug, Clone)]
pub struct LocalStore {
    id: String,
    root: PathBuf,
    io: BlockingIo,
}

impl LocalStore {
    /// Opens (creating if needed) the store at `root`, and drops temp files of interrupted writes.
    pub fn open(id: impl Into<String>, root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let id = id.into();
        let root = root.into();
        let io = |source| StoreError::Io {
            store: id.clone(),
            source,
        };
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io)?;
        }
        std::fs::create_dir_all(&tmp).map_err(io)?;
        // All 256 fan-out directories up front: a write then never has to make (or look for)
        // its directory, which measured ~1.5% of upload CPU as a mkdir per fragment.
        for prefix in 0..=255u8 {
            let dir = root.join(hex::encode([prefix]));
            if !dir.is_dir() {
                std::fs::create_dir_all(&dir).map_err(io)?;
            }
        }
        std::fs::File::open(&root)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(Self {
            io: BlockingIo::new(id.clone(), IO_SLOTS),
            id,
            root,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Up to `limit` fragments found in the directory `root` (which need not be an open store,
    /// nor exist), without listing it all: enough to tell whether a directory holds fragments.
    pub fn sample(root: &Path, limit: usize) -> std::io::Result<Vec<FragmentHash>> {
        let mut out = Vec::new();
        let dirs = match std::fs::read_dir(root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for dir in dirs {
            let dir = dir?;
            // Half-written fragments in .tmp are no one's data.
            if dir.file_name() == TMP_DIR || !dir.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(dir.path())? {
                if out.len() >= limit {
                    return Ok(out);
                }
                if let Some(hash) = entry?.file_name().to_str().and_then(FragmentHash::from_hex) {
                    out.push(hash);
                }
            }
        }
        Ok(out)
    }

    /// Operations running on threads right now (at most [`IO_SLOTS`]).
    pub fn io_running(&self) -> usize {
        self.io.running()
    }

    /// Where a fragment lives (used by tests that damage stores on purpose).
    pub fn path_of(&self, hash: FragmentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    fn io(&self) -> impl Fn(std::io::Error) -> StoreError + '_ {
        |source| StoreError::Io {
            store: self.id.clone(),
            source,
        }
    }

    fn put_blocking(&self, hash: FragmentHash, data: &[u8]) -> Result<(), StoreError> {
        let target = self.path_of(hash);
        if target.exists() {
            return Ok(());
        }
        let dir = target.parent().expect("fragment path has a parent");
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().simple().to_string());
        write_synced(&tmp, data).map_err(self.io())?;
        if let Err(e) = std::fs::rename(&tmp, &target) {
            // The fan-out directories are made at open; one removed since is made again.
            if e.kind() != std::io::ErrorKind::NotFound {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.io()(e));
            }
            if let Err(e) =
                std::fs::create_dir_all(dir).and_then(|()| std::fs::rename(&tmp, &target))
            {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.io()(e));
            }
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io())
    }

    fn get_blocking(
        &self,
        hash: FragmentHash,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        let mut file = match std::fs::File::open(self.path_of(hash)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    store: self.id.clone(),
                    hash,
                });
            }
            Err(e) => return Err(self.io()(e)),
        };
        let len = file.metadata().map_err(self.io())?.len();
        let r = range.unwrap_or(0..len);
        if r.start > r.end || r.end > len {
            return Err(StoreError::BadRange {
                store: self.id.clone(),
                hash,
                start: r.start,
                end: r.end,
                len,
            });
        }
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        file.seek(SeekFrom::Start(r.start)).map_err(self.io())?;
        file.read_exact(&mut buf).map_err(self.io())?;
        Ok(Bytes::from(buf))
    }

    fn delete_blocking(&self, hash: FragmentHash) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path_of(hash)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io()(e)),
            _ => Ok(()),
        }
    }

    /// A page of fragments in hash order: the fan-out directories are named by the first byte
    /// of the hash, so a page reads them in order from `after`'s, each one whole (about 1/256
    /// of the store), sorted.
    fn list_page_blocking(
        &self,
        after: Option<FragmentHash>,
        limit: usize,
    ) -> Result<Vec<StoredFragment>, StoreError> {
        let mut out = Vec::new();
        let first = after.map_or(0, |a| a.0[0]);
        for prefix in first..=255u8 {
            let dir = self.root.join(hex::encode([prefix]));
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io()(e)),
            };
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(self.io())?;
                let Some(hash) = entry.file_name().to_str().and_then(FragmentHash::from_hex) else {
                    continue;
                };
                if after.is_some_and(|a| hash <= a) {
                    continue;
                }
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map_err(self.io())?;
                found.push(StoredFragment { hash, modified });
            }
            found.sort_by_key(|f| f.hash);
            found.truncate(limit - out.len());
            out.extend(found);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

/// Writes `data` to a new file at `path` and makes it durable.
fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path);
    match direct {
        Ok(file) => write_direct(file, data),
        // Filesystems without O_DIRECT (tmpfs) refuse the flag: go through the page cache.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let mut file = std::fs::File::create(path)?;
            file.write_all(data)?;
            file.sync_data()
        }
        Err(e) => Err(e),
    }
}

fn write_direct(mut file: std::fs::File, data: &[u8]) -> std::io::Result<()> {
    if data.as_ptr().align_offset(DIRECT_ALIGN) == 0 && data.len().is_multiple_of(DIRECT_ALIGN) {
        // Full fragments of large buffers usually are aligned already: no copy.
        file.write_all(data)?;
        return file.sync_data();
    }
    // Copy into a block-aligned region of a fresh buffer; only the alignment slack and the tail
    // padding are zero-filled.
    let padded = data.len().next_multiple_of(DIRECT_ALIGN);
    let mut buf: Vec<u8> = Vec::with_capacity(padded + DIRECT_ALIGN);
    let offset = buf.as_ptr().align_offset(DIRECT_ALIGN);
    buf.resize(offset, 0);
    buf.extend_from_slice(data);
    buf.resize(offset + padded, 0);
    file.write_all(&buf[offset..])?;
    file.set_len(data.len() as u64)?;
    file.sync_data()
}

/// Runs blocking file I/O off the async threads, in one of the store's slots.
async fn blocking<T: Send + 'static>(
    store: &LocalStore,
    f: impl FnOnce(&LocalStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let me = store.clone();
    store.io.run(move || f(&me)).await
}

#[async_trait]
impl FragmentStore for LocalStore {
    fn id(&self) -> &str {
        &self.id
    }

    async fn put(&self, hash: FragmentHash, data: Bytes) -> Result<(), StoreError> {
        blocking(self, move |s| s.put_blocking(hash, &data)).await
    }

    async fn get(
        &self,
        hash: FragmentHash,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        blocking(self, move |s| s.get_blocking(hash, range)).await
    }

    async fn delete(&self, hash: FragmentHash) -> Result<(), StoreError> {
        blocking(self, move |s| s.delete_blocking(hash)).await
    }

    async fn list_page(
        &self,
        after: Option<FragmentHash>,
        limit: usize,
    ) -> Result<Vec<StoredFragment>, StoreError> {
        blocking(self, move |s| s.list_page_blocking(after, limit)).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        blocking(self, |s| {
            let tmp = s.root.join(TMP_DIR);
            if tmp.is_dir() {
                Ok(())
            } else {
                Err(StoreError::Unavailable {
                    store: s.id.clone(),
                    reason: "directory is missing".into(),
                })
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open("local-0", dir.path()).unwrap();
        crate::store::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn sample_finds_fragments_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        assert!(LocalStore::sample(&root, 4).unwrap().is_empty());
        let store = LocalStore::open("local-0", &root).unwrap();
        std::fs::write(root.join(TMP_DIR).join("half-written"), b"x").unwrap();
        std::fs::write(root.join("ab").join("not-a-hash"), b"x").unwrap();
        std::fs::write(root.join("deoss-store.json"), b"{}").unwrap();
        assert!(LocalStore::sample(&root, 4).unwrap().is_empty());
        let hashes: Vec<FragmentHash> = (0..3u8).map(|i| FragmentHash::of(&[i])).collect();
        for h in &hashes {
            store.put(*h, Bytes::copy_from_slice(&h.0)).await.unwrap();
        }
        let mut found = LocalStore::sample(&root, 10).unwrap();
        found.sort();
        let mut expected = hashes.clone();
        expected.sort();
        assert_eq!(found, expected);
        assert_eq!(LocalStore::sample(&root, 2).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn interrupted_writes_are_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        LocalStore::open("local-0", dir.path()).unwrap();
        std::fs::write(dir.path().join(TMP_DIR).join("half-written"), b"x").unwrap();
        let store = LocalStore::open("local-0", dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
        assert!(store.list().await.unwrap().is_empty());
    }

    /// Waits (on the real clock: the paused one does not move while threads are stuck) until
    /// `store` has `n` operations on threads.
    async fn until_running(store: &LocalStore, n: usize) {
        for _ in 0..2000 {
            if store.io_running() == n {
                return;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("{} operations running, not {n}", store.io_running());
    }

    /// Opens the FIFO at `.1` for writing until `.0` has no operation left on a thread: readers
    /// stuck in `open` return. On drop, so that a failing test ends instead of waiting forever
    /// for its stuck threads.
    struct Unblock(LocalStore, PathBuf);

    impl Drop for Unblock {
        fn drop(&mut self) {
            use std::os::unix::fs::OpenOptionsExt;
            for _ in 0..2000 {
                if self.0.io_running() == 0 {
                    return;
                }
                // Non-blocking: fails at once while no reader waits.
                let writer = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&self.1);
                drop(writer);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }

    /// A fragment whose reads hang in the kernel, as on a hung disk (a FIFO nobody writes:
    /// opening it waits for a writer). However many reads are made and given up on, the store
    /// holds `IO_SLOTS` threads; once it counts as stalled, requests fail at once; when the disk
    /// answers, everything comes back.
    #[tokio::test(start_paused = true)]
    async fn a_hung_disk_holds_a_bounded_number_of_threads() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open("local-0", dir.path()).unwrap();
        let hash = FragmentHash::of(b"x");
        store.put(hash, Bytes::from_static(b"x")).await.unwrap();
        let path = store.path_of(hash);
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success());
        let unblock = Unblock(store.clone(), path);
        // Readers give up after a second, as fragment reads time out.
        let reads: Vec<_> = (0..3 * IO_SLOTS)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(1), store.get(hash, None)).await
                })
            })
            .collect();
        until_running(&store, IO_SLOTS).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        for read in reads {
            assert!(read.await.unwrap().is_err(), "every read gave up");
        }
        assert_eq!(store.io_running(), IO_SLOTS, "stuck threads stay stuck");
        tokio::time::advance(super::super::blocking::STALL_AFTER).await;
        let other = FragmentHash::of(b"y");
        let fails_fast = store.put(other, Bytes::from_static(b"y"));
        tokio::pin!(fails_fast);
        assert!(matches!(
            futures::poll!(fails_fast.as_mut()),
            std::task::Poll::Ready(Err(StoreError::Unavailable { .. }))
        ));
        // The disk answers: a writer comes, the stuck reads return, the slots come back.
        drop(unblock);
        assert_eq!(store.io_running(), 0);
        store.put(other, Bytes::from_static(b"y")).await.unwrap();
        assert_eq!(&store.get(other, None).await.unwrap()[..], b"y");
    }
}
