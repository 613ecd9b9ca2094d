//! Rows of the catalogue, as the object service sees them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::FragmentHash;

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
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
    pub owner_id: String,
    /// Erasure profile of objects stored without a storage class of their own.
    pub profile: String,
    pub created_ms: i64,
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
    pub wrapped_key: Vec<u8>,
    /// HMAC of the SSE-C customer key; `None` for objects under the master key.
    pub sse_c_mac: Option<Vec<u8>>,
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
    /// Sorted by (segment, idx).
    pub fragments: Vec<FragmentRecord>,
}

#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub owner_id: String,
    pub initiated_ms: i64,
    pub meta: ObjectMeta,
    pub storage_class: String,
    pub profile: String,
    pub wrapped_key: Vec<u8>,
    pub sse_c_mac: Option<Vec<u8>>,
}

/// A fragment whose object is gone, waiting to be deleted from its store.
#[derive(Debug, Clone)]
pub struct GcEntry {
    pub id: i64,
    pub hash: FragmentHash,
    pub store: String,
}
