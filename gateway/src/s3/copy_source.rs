//! The source side of CopyObject and UploadPartCopy: which object, its SSE-C key, and the
//! `x-amz-copy-source-if-*` conditions.

use s3s::dto::{CopySource, ETagCondition, Timestamp};
use s3s::{S3Result, s3_error};

use super::DeossS3;
use super::error::OrS3;
use super::headers::{condition_text, customer_key, timestamp_ms};
use crate::object::{CopySourceConditions, CustomerKey, OpenedObject, Principal};

/// The copy-source fields of a request.
pub(super) struct CopySourceFields<'a> {
    pub source: &'a CopySource,
    pub sse_algorithm: Option<&'a str>,
    pub sse_key: Option<&'a str>,
    pub sse_key_md5: Option<&'a str>,
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// The copy-source fields of a CopyObject or UploadPartCopy input, which name them alike.
macro_rules! copy_source_fields {
    ($i:expr) => {
        $crate::s3::copy_source::CopySourceFields {
            source: &$i.copy_source,
            sse_algorithm: $i.copy_source_sse_customer_algorithm.as_deref(),
            sse_key: $i.copy_source_sse_customer_key.as_deref(),
            sse_key_md5: $i.copy_source_sse_customer_key_md5.as_deref(),
            if_match: $i.copy_source_if_match.as_ref(),
            if_none_match: $i.copy_source_if_none_match.as_ref(),
            if_modified_since: $i.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: $i.copy_source_if_unmodified_since.as_ref(),
        }
    };
}
pub(super) use copy_source_fields;

/// An opened copy source.
pub(super) struct CopySourceOpened {
    pub object: OpenedObject,
    pub bucket: String,
    pub key: String,
    pub customer_key: Option<CustomerKey>,
}

impl DeossS3 {
    /// Opens the source of a copy once its conditions hold.
    pub(super) async fn open_copy_source(
        &self,
        caller: &Principal,
        f: CopySourceFields<'_>,
    ) -> S3Result<CopySourceOpened> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = f.source
        else {
            return Err(s3_error!(
                NotImplemented,
                "access point copy sources are not supported"
            ));
        };
        if version_id.as_deref().is_some_and(|v| v != "null") {
            return Err(s3_error!(
                NoSuchVersion,
                "this bucket is not versioned; only version \"null\" exists"
            ));
        }
        let customer_key = customer_key(f.sse_algorithm, f.sse_key, f.sse_key_md5)?;
        let object = self
            .svc
            .open_object(caller, bucket, key, customer_key.as_ref())
            .await
            .or_s3()?;
        CopySourceConditions {
            if_match: f.if_match.map(condition_text),
            if_none_match: f.if_none_match.map(condition_text),
            if_modified_since_ms: f.if_modified_since.map(timestamp_ms),
            if_unmodified_since_ms: f.if_unmodified_since.map(timestamp_ms),
        }
        .check(&object.info())
        .or_s3()?;
        Ok(CopySourceOpened {
            object,
            bucket: bucket.to_string(),
            key: key.to_string(),
            customer_key,
        })
    }
}
