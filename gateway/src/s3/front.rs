//! The HTTP layer in front of s3s: requests refused before s3s sees them, and S3 XML error
//! bodies (with a message) for the failures s3s hands back bare.
//!
//! A refusal here never reads the request body: a client streaming gigabytes at a refused
//! request gets its answer at once, and the connection is closed after it.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::auth::{is_sigv2, signing_region};

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

/// A request signed for another region is refused, as AWS refuses it: s3s checks the signature
/// with whatever region the scope names, so it would accept it.
pub async fn refuse_foreign_scope(
    axum::extract::State(region): axum::extract::State<String>,
    req: Request,
    next: Next,
) -> Response {
    match signing_region(req.headers(), req.uri()) {
        Some(signed) if signed != region => refuse(
            StatusCode::BAD_REQUEST,
            "AuthorizationHeaderMalformed",
            &format!(
                "The authorization header is malformed; the region '{signed}' is wrong; \
                 expecting '{region}'"
            ),
        ),
        _ => next.run(req).await,
    }
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

/// Largest error body [`fill_error_messages`] looks into; S3 error documents are far smaller.
const ERROR_BODY_LIMIT: usize = 8 * 1024;

/// s3s leaves the `<Message>` out of some of its own errors (`InvalidBucketName`,
/// `KeyTooLongError`, `SignatureDoesNotMatch`...). S3 always sends one and clients show it, so
/// an XML error without one gets S3's words for its code.
pub async fn fill_error_messages(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let is_xml = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/xml"));
    let small = http_body::Body::size_hint(resp.body())
        .exact()
        .is_some_and(|n| n <= ERROR_BODY_LIMIT as u64);
    if !(resp.status().is_client_error() || resp.status().is_server_error()) || !is_xml || !small {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_LIMIT).await else {
        tracing::error!("an S3 error body could not be read");
        return s3s_internal_error();
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(with_message) = with_default_message(&text) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(with_message))
}

/// `xml` with a `<Message>` after its `<Code>`, if it has a code and no message.
fn with_default_message(xml: &str) -> Option<String> {
    if xml.contains("<Message>") {
        return None;
    }
    let start = xml.find("<Code>")? + "<Code>".len();
    let end = start + xml[start..].find("</Code>")?;
    let at = end + "</Code>".len();
    let message = escape(default_message(&xml[start..end]));
    Some(format!(
        "{}<Message>{message}</Message>{}",
        &xml[..at],
        &xml[at..]
    ))
}

/// S3's message for an error code.
fn default_message(code: &str) -> &'static str {
    match code {
        "AccessDenied" => "Access Denied",
        "IncompleteBody" => {
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        }
        "InternalError" => "We encountered an internal error. Please try again.",
        "InvalidAccessKeyId" => "The AWS access key Id you provided does not exist in our records.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidRequest" => "Invalid Request",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long.",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our \
             published schema."
        }
        "MaxMessageLengthExceeded" => "Your request was too big.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "NotImplemented" => {
            "A header or query you provided implies functionality that is not implemented."
        }
        "PreconditionFailed" => "At least one of the pre-conditions you specified did not hold.",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the current time is too large."
        }
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method."
        }
        _ => "The request could not be processed.",
    }
}

fn s3s_internal_error() -> Response {
    xml_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "We encountered an internal error. Please try again.",
    )
}

/// What the client gets when s3s fails outside any S3 operation (it could not even write its
/// own error response): an S3 `InternalError`, never the cause.
pub async fn s3s_failure(err: s3s::HttpError) -> Response {
    tracing::error!(?err, "S3 service error");
    s3s_internal_error()
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
    fn errors_without_a_message_get_s3s_words() {
        let bare = "<?xml version=\"1.0\"?><Error><Code>KeyTooLongError</Code></Error>";
        assert_eq!(
            with_default_message(bare).unwrap(),
            "<?xml version=\"1.0\"?><Error><Code>KeyTooLongError</Code>\
             <Message>Your key is too long.</Message></Error>"
        );
        let full = "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        assert_eq!(with_default_message(full), None);
        assert_eq!(with_default_message("<html/>"), None);
    }

    #[test]
    fn messages_are_escaped() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
