//! Raw SigV4-signed HTTP/1.1 requests, for what the SDK will not send: a payload hash that does
//! not match the body, a skewed clock, another region's scope, a body cut off mid-way.

use std::net::SocketAddr;
use std::time::Duration;

use deoss_bench::sigv4::{Credentials, RequestToSign, UNSIGNED_PAYLOAD, canonical_query, sign};
use sha2::Digest as _;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ROOT_AK, ROOT_SK, RawResponse};

/// How a request is signed: by the root user, now, for us-east-1, over its whole body.
pub struct Signing {
    pub region: String,
    pub now: OffsetDateTime,
    /// `None`: the SHA-256 of the body; else this value (`UNSIGNED-PAYLOAD`, or a wrong hash).
    pub payload_hash: Option<String>,
}

impl Default for Signing {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            now: OffsetDateTime::now_utc(),
            payload_hash: None,
        }
    }
}

impl Signing {
    pub fn unsigned_payload() -> Self {
        Self {
            payload_hash: Some(UNSIGNED_PAYLOAD.into()),
            ..Self::default()
        }
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// The head of a signed request for `target` (a percent-encoded path, then optionally `?` and
/// query pairs whose values need no encoding), declaring `content_length` body bytes.
pub fn signed_head(
    addr: SocketAddr,
    method: &str,
    target: &str,
    content_length: u64,
    body_for_hash: &[u8],
    signing: &Signing,
) -> String {
    let host = addr.to_string();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let payload_hash = signing
        .payload_hash
        .clone()
        .unwrap_or_else(|| sha256_hex(body_for_hash));
    let credentials = Credentials {
        access_key: ROOT_AK.into(),
        secret_key: ROOT_SK.into(),
        region: signing.region.clone(),
    };
    let signature = sign(
        &credentials,
        &RequestToSign {
            method,
            path,
            query: &query,
            headers: &[("host", &host)],
            payload_hash: &payload_hash,
        },
        signing.now,
    );
    let mut target = path.to_string();
    if !query.is_empty() {
        target = format!("{path}?{}", canonical_query(&query));
    }
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {content_length}\r\n\
         x-amz-date: {}\r\nx-amz-content-sha256: {payload_hash}\r\nAuthorization: {}\r\n\
         Connection: close\r\n\r\n",
        signature.amz_date, signature.authorization
    )
}

/// Sends a signed request with its whole body and reads the response.
pub async fn signed_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    signing: &Signing,
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = signed_head(addr, method, path, body.len() as u64, body, signing);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    read_response(&mut stream).await
}

/// Reads a whole `Connection: close` response, within a minute.
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut buf))
        .await
        .expect("a response within a minute")
        .unwrap();
    RawResponse::parse(&buf)
}
