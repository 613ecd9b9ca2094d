//! Fragment stores: where erasure-coded fragments live.
//!
//! One small trait, usable as `dyn`, with a local-directory backend (the default) and an
//! in-memory one for tests; later backends (remote S3-compatible nodes, CESS storage miners)
//! implement the same trait and run the same conformance suite. Fragments are content addressed:
//! a fragment's name is the SHA-256 of its bytes, as 64 lowercase hex characters (as CESS names
//! them), so a reader can always tell a corrupt fragment from a good one.
//!
//! Every store has a persistent id, kept in an id file inside it (`identity`), and the catalogue
//! registers it (`registry`); fragments are recorded under that id, never under a position in the
//! configuration.
//!
//! Stores fail slowly as well as quickly: a disk or node may stop answering. Callers bound every
//! call they wait on (the object service's fragment read and write timeouts) and may drop a call
//! at any point; a backend that runs blocking work on threads bounds that work per store
//! ([`blocking::BlockingIo`]), so that a hung store holds a fixed number of threads however many
//! callers gave up on it.

pub mod blocking;
pub mod identity;
pub mod local;
pub mod memory;
pub mod placement;
pub mod registry;

#[cfg(test)]
pub(crate) mod conformance;

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalStore;
pub use placement::StoreSet;
pub use registry::{Location, StoreInfo, StoreKind, StoreRegistry, StoreState};

/// SHA-256 of a fragment's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentHash(pub [u8; 32]);

impl FragmentHash {
    pub fn of(data: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, data);
        Self(digest.as_ref().try_into().expect("sha256 is 32 bytes"))
    }

    /// The hashes of several fragments, computed side by side: hashing independent messages
    /// interleaves the SHA-NI rounds of four of them, about twice the speed of one at a time.
    pub fn of_many(fragments: &[&[u8]]) -> Vec<Self> {
        let mut out = vec![[0u8; 32]; fragments.len()];
        tape_sha256::hash_many(fragments, &mut out);
        out.into_iter().map(Self).collect()
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let bytes = hex::decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for FragmentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for FragmentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FragmentHash({})", &self.to_hex()[..12])
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("fragment {hash} not found on store {store}")]
    NotFound { store: String, hash: FragmentHash },
    #[error("range {start}..{end} is outside fragment {hash} ({len} bytes) on store {store}")]
    BadRange {
        store: String,
        hash: FragmentHash,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("store {store}: {source}")]
    Io {
        store: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store {store} is unavailable: {reason}")]
    Unavailable { store: String, reason: String },
    /// The caller stopped waiting; the store may still complete the operation later.
    #[error("store {store} did not finish a fragment {operation} within {after:?}")]
    TimedOut {
        store: String,
        operation: &'static str,
        after: std::time::Duration,
    },
}

impl StoreError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Io { .. } | Self::Unavailable { .. } | Self::TimedOut { .. }
        )
    }
}

/// A fragment as listed by a store, for garbage collection.
#[derive(Debug, Clone)]
pub struct StoredFragment {
    pub hash: FragmentHash,
    pub modified: SystemTime,
}

/// Block size O_DIRECT writes are aligned to (offset, length and buffer address). Upload buffers
/// start on such a boundary so that whole fragments are written without a copy.
pub const DIRECT_ALIGN: usize = 4096;

#[async_trait]
pub trait FragmentStore: Send + Sync + fmt::Debug + 'static {
    /// Stable identifier, recorded in the catalogue next to every fragment placed here.
    fn id(&self) -> &str;

    /// Stores a fragment durably. Storing a fragment that is already present succeeds. The
    /// caller may stop waiting (a timeout) at any point: the store must then either finish the
    /// write whole or leave nothing a reader could take for the fragment.
    async fn put(&self, hash: FragmentHash, data: Bytes) -> Result<(), StoreError>;

    /// Reads a fragment, or a byte range of it. Callers give up after their read timeout and
    /// rebuild from other fragments.
    async fn get(&self, hash: FragmentHash, range: Option<Range<u64>>)
    -> Result<Bytes, StoreError>;

    /// Removes a fragment; removing an absent one succeeds.
    async fn delete(&self, hash: FragmentHash) -> Result<(), StoreError>;

    /// Up to `limit` fragments held, in hash order, after `after` (from the first when `None`):
    /// one page of what the store holds, for garbage collection. A store may hold millions of
    /// fragments; nobody lists them all at once.
    async fn list_page(
        &self,
        after: Option<FragmentHash>,
        limit: usize,
    ) -> Result<Vec<StoredFragment>, StoreError>;

    /// Every fragment held, page by page (tests and small stores).
    async fn list(&self) -> Result<Vec<StoredFragment>, StoreError> {
        let mut all = Vec::new();
        loop {
            let page = self
                .list_page(all.last().map(|f: &StoredFragment| f.hash), 1000)
                .await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Cheap liveness probe.
    async fn health(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::FragmentHash;

    /// The batched hasher must agree with the one-at-a-time one for every length class SHA-256
    /// pads differently (empty, within a block, at the 55/56/64 boundaries, many blocks) and for
    /// batches of unequal lengths, which hash side by side.
    #[test]
    fn batched_hashes_match_single_hashes() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let lengths = [
            0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4096, 65_537, 300_000,
        ];
        for batch in 1..=lengths.len() {
            let messages: Vec<&[u8]> = lengths[..batch]
                .iter()
                .enumerate()
                .map(|(i, &len)| &data[i..i + len.min(data.len() - i)])
                .collect();
            let expected: Vec<FragmentHash> =
                messages.iter().map(|m| FragmentHash::of(m)).collect();
            assert_eq!(
                FragmentHash::of_many(&messages),
                expected,
                "batch of {batch}"
            );
        }
    }
}
