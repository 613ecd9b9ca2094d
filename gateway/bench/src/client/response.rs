//! Reading responses: success checks, draining, and error bodies turned into errors.

use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::BenchError;

/// How much of an error response body is kept for the message.
const ERROR_BODY_LIMIT: usize = 2048;

pub(super) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

pub(super) async fn expect_success(
    op: &'static str,
    key: &str,
    response: Response<Incoming>,
) -> Result<(), BenchError> {
    let status = response.status();
    if !status.is_success() {
        return Err(error_from(op, key, status, response).await);
    }
    drain(op, key, response).await
}

pub(super) async fn drain(
    op: &'static str,
    key: &str,
    response: Response<Incoming>,
) -> Result<(), BenchError> {
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|source| BenchError::Body {
            op,
            key: key.to_owned(),
            source,
        })?;
    }
    Ok(())
}

pub(super) async fn read_text(
    op: &'static str,
    key: &str,
    response: Response<Incoming>,
) -> Result<String, BenchError> {
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|source| BenchError::Body {
            op,
            key: key.to_owned(),
            source,
        })?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) async fn error_from(
    op: &'static str,
    key: &str,
    status: StatusCode,
    response: Response<Incoming>,
) -> BenchError {
    let text = read_text(op, key, response).await.unwrap_or_default();
    status_error(op, key, status, text)
}

pub(super) fn status_error(
    op: &'static str,
    key: &str,
    status: StatusCode,
    mut body: String,
) -> BenchError {
    if body.len() > ERROR_BODY_LIMIT {
        let mut cut = ERROR_BODY_LIMIT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    BenchError::Status {
        op,
        key: key.to_owned(),
        status,
        body,
    }
}
