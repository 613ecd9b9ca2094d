//! What the object service tells front ends about an object: its own type, not a catalogue
//! row (no wrapped keys, no key commitments).

use super::keyring::Keyring;
use crate::catalogue::{Checksum, ObjectMeta, ObjectRecord};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// Plaintext length in bytes.
    pub size: u64,
    /// The ETag clients see (unquoted): the MD5 of a single PUT, the multipart ETag, or an
    /// opaque value for SSE-C objects.
    pub etag: String,
    pub last_modified_ms: i64,
    pub meta: ObjectMeta,
    pub storage_class: String,
    pub checksum: Option<Checksum>,
    /// Number of multipart parts; 0 for a single PUT.
    pub parts_count: u32,
    /// Whether reading it needs the SSE-C key it was stored with.
    pub customer_key: bool,
}

impl From<&ObjectRecord> for ObjectInfo {
    fn from(r: &ObjectRecord) -> Self {
        Self {
            bucket: r.bucket.clone(),
            key: r.key.clone(),
            version_id: r.version_id.clone(),
            size: r.size,
            etag: r.etag.clone(),
            last_modified_ms: r.last_modified_ms,
            meta: r.meta.clone(),
            storage_class: r.storage_class.clone(),
            checksum: r.checksum.clone(),
            parts_count: r.parts_count,
            customer_key: Keyring::needs_customer_key(&r.wraps),
        }
    }
}
