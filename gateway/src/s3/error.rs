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
        Error::AccessDenied { .. } | Error::SettlementRefused(_) => (C::AccessDenied, msg),
        Error::ChainUnavailable(_) => {
            tracing::error!(error = %msg, "refusing an upload: settlement chain unavailable");
            (
                C::ServiceUnavailable,
                "the settlement chain cannot be reached to check this upload; try again later"
                    .into(),
            )
        }
        Error::InvalidArgument(_) => (C::InvalidArgument, msg),
        Error::InvalidRequest(_) | Error::SseCustomerKeyMissing => (C::InvalidRequest, msg),
        Error::SseCustomerKeyMismatch => (C::AccessDenied, msg),
        Error::InvalidStorageClass(_) => (C::InvalidStorageClass, msg),
        Error::BadDigest { .. } => (C::BadDigest, msg),
        Error::InvalidDigest { .. } => (C::InvalidDigest, msg),
        // S3's own code and words for it; s3s has no constant for it.
        Error::MissingTrailer { .. } => (
            C::Custom("MalformedTrailerError".into()),
            format!(
                "The request contained trailing data that was not well-formed or did not \
                 conform to our published schema: {msg}"
            ),
        ),
        Error::PreconditionFailed => (C::PreconditionFailed, msg),
        Error::InvalidRange { .. } => (C::InvalidRange, msg),
        Error::InvalidPart { .. } => (C::InvalidPart, msg),
        Error::InvalidPartOrder => (C::InvalidPartOrder, msg),
        Error::EntityTooSmall { .. } => (C::EntityTooSmall, msg),
        Error::EntityTooLarge { .. } => (C::EntityTooLarge, msg),
        Error::Body(e) => body_error(&error_chain(&*e)),
        Error::IncompleteBody => (
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
        Error::Buffers(e) => {
            tracing::error!(error = %e, "no memory for upload buffers");
            (
                C::SlowDown,
                "the gateway is short of memory; try again later".into(),
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
        Error::NotModified {
            etag,
            last_modified_ms,
        } => return not_modified(&etag, last_modified_ms),
        Error::InvalidPartNumber { .. } => {
            // S3's 416 for a part number past the last part (s3s has no constant for it).
            let mut e = S3Error::with_message(C::Custom("InvalidPartNumber".into()), msg);
            e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            return e;
        }
        other @ (Error::Store(_)
        | Error::Catalogue(_)
        | Error::Crypto(_)
        | Error::Coding(_)
        | Error::Task(_)) => {
            tracing::error!(error = %other, source = ?std::error::Error::source(&other), "internal error");
            (
                C::InternalError,
                "we encountered an internal error; please try again".into(),
            )
        }
    };
    let custom_status = matches!(&code, C::Custom(_));
    let mut err = S3Error::with_message(code, message);
    if custom_status {
        err.set_status_code(http::StatusCode::BAD_REQUEST);
    }
    err
}

/// 304 Not Modified, naming the object's ETag and Last-Modified as RFC 9110 asks.
fn not_modified(etag: &str, last_modified_ms: i64) -> S3Error {
    let mut err = S3Error::new(S3ErrorCode::NotModified);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(http::header::ETAG, v);
    }
    let date = super::headers::http_date(&super::headers::timestamp(last_modified_ms));
    if let Some(v) = date.ok().and_then(|d| http::HeaderValue::from_str(&d).ok()) {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    err.set_headers(headers);
    err
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What went wrong with a request body. s3s verifies chunk signatures and payload hashes while
/// the body streams, and its error types are private, so they are told apart by their text.
fn body_error(text: &str) -> (S3ErrorCode, String) {
    use S3ErrorCode as C;
    if text.contains("SignatureMismatch") {
        (
            C::SignatureDoesNotMatch,
            "a chunk signature of the aws-chunked body does not match".into(),
        )
    } else if text.contains("Sha256Mismatch") {
        // S3's own code for this; s3s has no constant for it.
        (
            C::Custom("XAmzContentSHA256Mismatch".into()),
            "the body does not match x-amz-content-sha256".into(),
        )
    } else if text.contains("FormatError") || text.contains("TooLarge") || text.contains("TooMany")
    {
        (
            C::InvalidRequest,
            "the aws-chunked body is malformed".into(),
        )
    } else {
        (
            C::IncompleteBody,
            "the request body could not be read in full".into(),
        )
    }
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
        let e = to_s3(Error::ChainUnavailable("ws://10.0.0.1:9944 refused".into()));
        assert_eq!(e.code(), &S3ErrorCode::ServiceUnavailable);
        assert!(!e.message().unwrap_or_default().contains("10.0.0.1"));
        let e = to_s3(Error::SettlementRefused("not enough space: ...".into()));
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
        assert!(e.message().unwrap_or_default().contains("not enough space"));
        // Out of memory for upload buffers: the client should back off and retry.
        let e = to_s3(Error::Buffers(std::io::Error::from_raw_os_error(12)));
        assert_eq!(e.code(), &S3ErrorCode::SlowDown);
        assert_eq!(e.status_code(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    }
}
