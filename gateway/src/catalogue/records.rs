//! Rows of the catalogue, as the object service sees them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::FragmentHash;

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    /// The chain account (SS58) the user's objects are settled for; `None`: a deterministic dev
    /// account on the dev ledger, no uploads on CESS.
    pub chain_account: Option<String>,
    /// The user's default territory; `None`: the gateway's default territory name.
    pub territory: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AccessKeyRecord {
    pub access_key: String,
    pub user_id: String,
    /// The secret key, sealed by the master key.
    pub secret_sealed: Vec<u8>,
    pub created_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    /// This incarnation of the name: new each time a bucket of that name is created. Writes
    /// commit only into the incarnation they were admitted to.
    pub id: String,
    pub owner_id: String,
    /// Erasure profile of objects stored without a storage class of their own.
    pub profile: String,
    pub created_ms: i64,
    /// Territory that objects of this bucket take space from; `None`: the owner's.
    pub territory: Option<String>,
}

/// The HTTP headers and user metadata an object keeps and returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// RFC 7231 date, as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

/// An `x-amz-checksum-*` value: the algorithm's name (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`,
/// `SHA256`) and the base64 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub meta: ObjectMeta,
    pub storage_class: String,
    /// The wraps of the version's data key (see `object::keyring`).
    pub wraps: Vec<KeyWrapRecord>,
    pub checksum: Option<Checksum>,
    /// Number of multipart parts; 0 for a single PUT.
    pub parts_count: u32,
}

/// One fragment of one segment, and the store that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRecord {
    pub segment: u32,
    pub idx: u32,
    pub hash: FragmentHash,
    pub store: String,
}

/// A separately encrypted run of an object: the whole object for a single PUT, one part of a
/// multipart upload. Small extents are kept inline (still encrypted); the others are cut into
/// segments of erasure-coded fragments.
#[derive(Debug, Clone)]
pub struct ExtentRecord {
    /// 0 for a single PUT, the part number for multipart.
    pub part: u32,
    /// Plaintext length.
    pub size: u64,
    /// Hex MD5 of the plaintext: the ETag of a single PUT or a part.
    pub md5: String,
    pub nonce_prefix: [u8; 7],
    pub inline_data: Option<Vec<u8>>,
    pub k: u32,
    pub m: u32,
    pub fragment_size: u32,
    pub checksum: Option<Checksum>,
    pub created_ms: i64,
    /// SHA-256 of each sealed segment (before padding), in segment order: the CESS segment
    /// hashes. Empty for an inline extent; `None` for extents written before they were kept.
    pub segment_hashes: Option<Vec<FragmentHash>>,
    /// Sorted by (segment, idx).
    pub fragments: Vec<FragmentRecord>,
}

#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub upload_id: String,
    pub bucket: String,
    /// The bucket incarnation the upload was created in.
    pub bucket_id: String,
    pub key: String,
    pub version_id: String,
    pub owner_id: String,
    pub initiated_ms: i64,
    pub meta: ObjectMeta,
    pub storage_class: String,
    pub profile: String,
    /// The wraps of the upload version's data key; the completed object keeps them.
    pub wraps: Vec<KeyWrapRecord>,
}

/// One wrap of a version's data key: under the master key, an SSE-C key (with a salted
/// commitment to that key) or, later, an owner's Umbral key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWrapRecord {
    /// `master` or `customer` (see `object::keyring`).
    pub kind: String,
    pub wrapped: Vec<u8>,
    pub commitment: Option<Vec<u8>>,
}

/// A fragment whose object is gone, waiting to be deleted from its store.
#[derive(Debug, Clone)]
pub struct GcEntry {
    pub id: i64,
    /// The version the fragment belonged to (`None` for entries queued before this was kept).
    pub version_id: Option<String>,
    pub hash: FragmentHash,
    pub store: String,
}

/// Where a row of the settlement outbox stands. `as_str` is the stored text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementState {
    /// Waiting for the settlement worker.
    Pending,
    /// The declaration is on chain.
    Declared,
    /// The deletion is on chain (or there was nothing left to delete).
    Deleted,
    /// The chain refused it; `reason` says why. Not retried.
    Failed,
    /// Never declarable (inline object, another erasure profile); `reason` says why.
    None,
}

impl SettlementState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Declared => "declared",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
            Self::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "declared" => Self::Declared,
            "deleted" => Self::Deleted,
            "failed" => Self::Failed,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// What an outbox row asks of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementKind {
    /// `FileBank.upload_declaration` of an object version.
    Declare,
    /// `FileBank.delete_file` of a retired version's order.
    Delete,
}

impl SettlementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declare => "declare",
            Self::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "declare" => Some(Self::Declare),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// A declaration to enqueue with the object that it settles.
#[derive(Debug, Clone)]
pub struct NewSettlement {
    /// Account of the gateway that will settle it.
    pub gateway: String,
    /// `Pending` (to declare) or `None` (not declarable, with a reason).
    pub state: SettlementState,
    pub fid: Option<String>,
    pub owner: Option<String>,
    /// The declaration request, as JSON.
    pub request: Option<String>,
    pub reason: Option<String>,
}

/// A row of the settlement outbox.
#[derive(Debug, Clone)]
pub struct SettlementRecord {
    pub id: i64,
    pub kind: SettlementKind,
    pub gateway: String,
    pub version_id: String,
    pub bucket: String,
    pub key: String,
    pub fid: Option<String>,
    pub owner: Option<String>,
    pub request: Option<String>,
    pub state: SettlementState,
    /// Block of the declaration or deletion, when known.
    pub block: Option<i64>,
    pub reason: Option<String>,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}
