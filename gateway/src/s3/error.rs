//! The one place where object-service errors become S3 errors. Internal failures are logged here,
//! once, and reach the client only as a bare `InternalError` or `ServiceUnavailable`: no paths,
//! keys or causes.

use s3s::{S3Error, S3ErrorCode};

use crate::object::Error;
use crate::store::StoreError;

pub fn to_s3(err: Error) -> S3Error {
    use S3ErrorCode as C;
    let msg = err.to_string();
    let (code, message) = match err {
        Error::NoSuchBucket { .. } => (C::NoSuchBucket, msg),
        Error::NoSuchKey { .. } => (C::NoSuchKey, msg),
        Error::NoSuchUpload { .. } => (C::NoSuchUpload, msg),
        Error::BucketAlreadyExists { .. } => (C::BucketAlreadyExists, msg),
        Error::BucketAlreadyOwnedByYou { .. } => (C::BucketAlreadyOwnedByYou, msg),
        Error::BucketNotEmpty { .. } => (C::BucketNotEmpty, msg),
        Error::AccessDenied { .. } => (C::AccessDenied, msg),
        Error::InvalidArgument(_) => (C::InvalidArgument, msg),
        Error::InvalidRequest(_) | Error::SseCustomerKeyMissing => (C::InvalidRequest, msg),
        Error::SseCustomerKeyMismatch => (C::AccessDenied, msg),
        Error::InvalidStorageClass(_) => (C::InvalidStorageClass, msg),
        Error::BadDigest { .. } => (C::BadDigest, msg),
        Error::InvalidDigest { .. } => (C::InvalidDigest, msg),
        Error::PreconditionFailed => (C::PreconditionFailed, msg),
        Error::InvalidRange { .. } => (C::InvalidRange, msg),
        Error::InvalidPart { .. } => (C::InvalidPart, msg),
        Error::InvalidPartOrder => (C::InvalidPartOrder, msg),
        Error::EntityTooSmall { .. } => (C::EntityTooSmall, msg),
        Error::EntityTooLarge { .. } => (C::EntityTooLarge, msg),
        Error::IncompleteBody | Error::Body(_) => (
            C::IncompleteBody,
            "the request body could not be read in full".into(),
        ),
        Error::NotEnoughStores { .. } => {
            tracing::error!(error = %msg, "refusing a write");
            (
                C::ServiceUnavailable,
                "not enough storage nodes are available; try again later".into(),
            )
        }
        Error::Store(e) if e.is_retryable() => {
            tracing::error!(error = %e, "fragment store failure");
            (
                C::ServiceUnavailable,
                "a storage node is unavailable; try again later".into(),
            )
        }
        Error::Store(StoreError::NotFound { .. }) | Error::DataLoss(_) => {
            tracing::error!(error = %msg, "object data unreadable");
            (
                C::InternalError,
                "we encountered an internal error; please try again".into(),
            )
        }
        other => {
            tracing::error!(error = %other, source = ?std::error::Error::source(&other), "internal error");
            (
                C::InternalError,
                "we encountered an internal error; please try again".into(),
            )
        }
    };
    S3Error::with_message(code, message)
}

pub type S3Result<T> = Result<T, S3Error>;

/// `?` for object-service results inside S3 handlers.
pub trait OrS3<T> {
    fn or_s3(self) -> S3Result<T>;
}

impl<T> OrS3<T> for Result<T, Error> {
    fn or_s3(self) -> S3Result<T> {
        self.map_err(to_s3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak() {
        let e = to_s3(Error::DataLoss(
            "/var/lib/deoss/stores/03/ab/abcdef missing".into(),
        ));
        assert_eq!(e.code(), &S3ErrorCode::InternalError);
        assert!(!e.message().unwrap_or_default().contains("/var"));
        let e = to_s3(Error::NoSuchKey {
            bucket: "b".into(),
            key: "k".into(),
        });
        assert_eq!(e.code(), &S3ErrorCode::NoSuchKey);
    }
}
