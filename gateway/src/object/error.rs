//! The object service's error: what went wrong, in domain terms. The S3 front end maps each
//! variant to an S3 error code in exactly one place (`s3::error`).

use crate::catalogue::CatalogueError;
use crate::crypto::CryptoError;
use crate::erasure::CodingError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("bucket {bucket} does not exist")]
    NoSuchBucket { bucket: String },
    #[error("object {key} does not exist in bucket {bucket}")]
    NoSuchKey { bucket: String, key: String },
    #[error("multipart upload {upload_id} does not exist")]
    NoSuchUpload { upload_id: String },
    #[error("bucket {bucket} is owned by another user")]
    BucketAlreadyExists { bucket: String },
    #[error("you already own bucket {bucket}")]
    BucketAlreadyOwnedByYou { bucket: String },
    #[error("bucket {bucket} is not empty")]
    BucketNotEmpty { bucket: String },
    #[error("access denied: {reason}")]
    AccessDenied { reason: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("invalid storage class {0:?}")]
    InvalidStorageClass(String),
    #[error("the {what} you specified did not match what was received")]
    BadDigest { what: &'static str },
    #[error("the {what} you specified is not valid")]
    InvalidDigest { what: &'static str },
    /// `x-amz-trailer` announced a checksum the aws-chunked body never carried.
    #[error("the request announced a {header} trailer but the body carried none")]
    MissingTrailer { header: &'static str },
    #[error("a precondition given in the request did not hold")]
    PreconditionFailed,
    /// A conditional read whose object has not changed (HTTP 304); what the response names.
    #[error("not modified")]
    NotModified { etag: String, last_modified_ms: i64 },
    #[error("the requested part number is not satisfiable: the object has {parts} part(s)")]
    InvalidPartNumber { parts: u32 },
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    #[error("part {part} was not uploaded or its ETag does not match")]
    InvalidPart { part: u32 },
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    #[error("part {part} is smaller than the 5 MiB minimum for all parts but the last")]
    EntityTooSmall { part: u32 },
    #[error("object is larger than the maximum of {max} bytes")]
    EntityTooLarge { max: u64 },
    #[error("the request body ended before its declared length")]
    IncompleteBody,
    #[error("object is encrypted with a customer key: send the SSE-C headers")]
    SseCustomerKeyMissing,
    #[error("the SSE-C key does not match the key the object was stored with")]
    SseCustomerKeyMismatch,
    #[error("the erasure profile needs {needed} fragment stores but only {healthy} are healthy")]
    NotEnoughStores { needed: usize, healthy: usize },
    /// The chain refused the upload (no authorization, no territory, expired, no space); the
    /// message names the cause.
    #[error("upload refused by the settlement chain: {0}")]
    SettlementRefused(String),
    /// The chain could not be asked whether the upload may go ahead.
    #[error("{0}")]
    ChainUnavailable(String),
    #[error("reading the request body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("object data cannot be recovered: {0}")]
    DataLoss(String),
    /// No memory could be mapped for an upload's segment buffers.
    #[error("no memory for upload buffers")]
    Buffers(#[source] std::io::Error),
    #[error(transparent)]
    Catalogue(CatalogueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Coding(#[from] CodingError),
    #[error("internal task failed")]
    Task(#[from] tokio::task::JoinError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<CatalogueError> for Error {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::NoSuchBucket(bucket) => Error::NoSuchBucket { bucket },
            CatalogueError::NoSuchUpload(upload_id) => Error::NoSuchUpload { upload_id },
            e => Error::Catalogue(e),
        }
    }
}

impl From<crate::settlement::AdmitError> for Error {
    fn from(e: crate::settlement::AdmitError) -> Self {
        use crate::settlement::AdmitError as A;
        match e {
            A::Refused(why) => Error::SettlementRefused(why),
            A::Unavailable(why) => Error::ChainUnavailable(why),
            A::Catalogue(e) => Error::Catalogue(e),
        }
    }
}
