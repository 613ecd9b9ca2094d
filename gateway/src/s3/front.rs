//! The HTTP layer in front of s3s: requests refused before s3s sees them.
//!
//! A refusal here never reads the request body: a client streaming gigabytes at a refused
//! request gets its answer at once, and the connection is closed after it.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::auth::is_sigv2;

/// An S3 error response: `<Error><Code>..</Code><Message>..</Message></Error>`.
pub fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        escape(code),
        escape(message)
    );
    (
        status,
        [(header::CONTENT_TYPE, "application/xml")],
        Body::from(body),
    )
        .into_response()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A refusal sent without reading the body: the connection cannot be reused, so say so.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = xml_error(status, code, message);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// SigV2 is refused before s3s sees it (s3s would verify and accept it).
pub async fn refuse_sigv2(req: Request, next: Next) -> Response {
    if is_sigv2(req.headers(), req.uri()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported: AWS Signature \
             Version 2 is refused. Please use AWS4-HMAC-SHA256.",
        );
    }
    next.run(req).await
}

/// Browser form uploads (POST Object, `multipart/form-data`) are refused: s3s would buffer the
/// whole file in memory (up to 5 GiB) before any handler runs. This also covers forms signed
/// with SigV2 (`AWSAccessKeyId`, `signature` fields), whose fields only s3s would read.
pub async fn refuse_form_uploads(req: Request, next: Next) -> Response {
    if req.method() == http::Method::POST && is_form_data(req.headers()) {
        return refuse(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "Browser form uploads (POST Object with multipart/form-data) are not supported \
             yet; upload with PUT, for example to a presigned PUT URL.",
        );
    }
    next.run(req).await
}

/// Whether any Content-Type of the request is `multipart/form-data` (s3s reads a form from
/// such a POST whatever its path).
fn is_form_data(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        let v = String::from_utf8_lossy(v.as_bytes());
        let essence = v.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("multipart/form-data")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_data_is_recognised_in_any_spelling() {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Multipart/Form-Data ; boundary=xyz"),
        );
        assert!(is_form_data(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        assert!(!is_form_data(&h));
        h.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data"),
        );
        assert!(is_form_data(&h));
    }

    #[test]
    fn messages_are_escaped() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
