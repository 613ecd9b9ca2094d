//! The one error type of the bench library.

use http::StatusCode;

/// What can go wrong while driving an endpoint. Each variant says which operation and key
/// it hit, so a failed run points at the request that broke it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error("invalid size {0:?}: expected a number with an optional KiB/MiB/GiB/KB/MB/GB suffix")]
    InvalidSize(String),

    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },

    #[error("{op} {key}: request failed")]
    Request {
        op: &'static str,
        key: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },

    #[error("{op} {key}: reading the response body failed")]
    Body {
        op: &'static str,
        key: String,
        #[source]
        source: hyper::Error,
    },

    #[error("{op} {key}: server answered {status}: {body}")]
    Status {
        op: &'static str,
        key: String,
        status: StatusCode,
        body: String,
    },

    #[error("{op} {key}: {detail}")]
    Protocol {
        op: &'static str,
        key: String,
        detail: String,
    },

    #[error("GET {key}: wrong byte at offset {offset} (data does not match what was written)")]
    Corrupt { key: String, offset: u64 },

    #[error("{op}: the --max-seconds deadline passed before it finished")]
    DeadlineExceeded { op: String },

    #[error("reading /proc/{pid}: {source}")]
    ProcessProbe {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}
