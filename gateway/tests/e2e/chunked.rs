//! aws-chunked uploads with signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), signed by hand
//! here because the SDK sends unsigned chunks with a checksum trailer over plain HTTP.

use ring::digest::{SHA256, digest};
use ring::hmac;

use crate::harness::{ROOT_AK, ROOT_SK, Server, data, raw_request, status};

const REGION: &str = "us-east-1";
const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";

fn sha_hex(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data))
}

fn hmac_bytes(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// The time as `x-amz-date` wants it.
fn amz_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn signing_key(date: &str) -> Vec<u8> {
    let key = hmac_bytes(format!("AWS4{ROOT_SK}").as_bytes(), date);
    let key = hmac_bytes(&key, REGION);
    let key = hmac_bytes(&key, "s3");
    hmac_bytes(&key, "aws4_request")
}

/// Signs a PUT of `path` over `headers` (lower-case, sorted, `x-amz-date` among them) whose
/// `x-amz-content-sha256` is `content_sha`: appends the Authorization header and returns the
/// signature (the seed of chunk signatures).
fn authorize(headers: &mut Vec<(String, String)>, path: &str, content_sha: &str) -> String {
    let amz_date = headers
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .map(|(_, v)| v.clone())
        .unwrap();
    let scope = format!("{}/{REGION}/s3/aws4_request", &amz_date[..8]);
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "PUT\n{path}\n\n{canonical_headers}\n{}\n{content_sha}",
        signed.join(";")
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha_hex(canonical.as_bytes())
    );
    let seed = hex::encode(hmac_bytes(&signing_key(&amz_date[..8]), &to_sign));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={ROOT_AK}/{scope}, SignedHeaders={}, Signature={seed}",
        signed.join(";")
    );
    headers.push(("authorization".to_string(), authorization));
    seed
}

/// The encoded body and headers of a signed aws-chunked PUT; `tamper` breaks one chunk signature.
fn signed_chunked(
    addr: &str,
    path: &str,
    payload: &[u8],
    chunk: usize,
    tamper: bool,
) -> (Vec<(String, String)>, Vec<u8>) {
    let amz_date = amz_now();
    let date = &amz_date[..8];
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let signing_key = signing_key(date);

    // Encoded length: every chunk header, its data and CRLFs, then the final empty chunk.
    let sig_len = 64;
    let header_len = |n: usize| format!("{n:x};chunk-signature=").len() + sig_len + 2;
    let mut encoded_len = 0;
    for c in payload.chunks(chunk) {
        encoded_len += header_len(c.len()) + c.len() + 2;
    }
    encoded_len += header_len(0) + 2;

    let mut headers = vec![
        ("content-encoding".to_string(), "aws-chunked".to_string()),
        ("content-length".to_string(), encoded_len.to_string()),
        ("host".to_string(), addr.to_string()),
        ("x-amz-content-sha256".to_string(), STREAMING.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
        (
            "x-amz-decoded-content-length".to_string(),
            payload.len().to_string(),
        ),
    ];
    let seed = authorize(&mut headers, path, STREAMING);

    let mut body = Vec::with_capacity(encoded_len);
    let mut prev = seed;
    let empty_hash = sha_hex(b"");
    let mut chunks: Vec<&[u8]> = payload.chunks(chunk).collect();
    chunks.push(&[]);
    for (i, c) in chunks.iter().enumerate() {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{prev}\n{empty_hash}\n{}",
            sha_hex(c)
        );
        let mut sig = hex::encode(hmac_bytes(&signing_key, &to_sign));
        prev = sig.clone();
        if tamper && i == 1 {
            sig.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
        }
        body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", c.len()).as_bytes());
        body.extend_from_slice(c);
        body.extend_from_slice(b"\r\n");
    }
    assert_eq!(body.len(), encoded_len);
    headers.retain(|(k, _)| k != "host" && k != "content-length");
    (headers, body)
}

#[tokio::test]
async fn signed_chunk_uploads_are_verified() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("chunked").send().await.unwrap();
    let addr = server.addr.to_string();
    let payload = data(200_000, 8);

    let (headers, body) = signed_chunked(&addr, "/chunked/signed", &payload, 64 * 1024, false);
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = raw_request(server.addr, "PUT", "/chunked/signed", &h, &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = s3
        .get_object()
        .bucket("chunked")
        .key("signed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        payload.as_slice()
    );

    let (headers, body) = signed_chunked(&addr, "/chunked/tampered", &payload, 64 * 1024, true);
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = raw_request(server.addr, "PUT", "/chunked/tampered", &h, &body).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(
        resp.text().contains("SignatureDoesNotMatch"),
        "{}",
        resp.text()
    );
    let missing = s3
        .head_object()
        .bucket("chunked")
        .key("tampered")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&missing), 404, "nothing was stored");
}

/// The headers and body of an unsigned aws-chunked PUT that announces an `x-amz-checksum-crc32`
/// trailer and ends with `trailer` (None: the trailer never comes).
fn unsigned_with_trailer(
    addr: &str,
    path: &str,
    payload: &[u8],
    trailer: Option<&str>,
) -> (Vec<(String, String)>, Vec<u8>) {
    const UNSIGNED: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
    let mut body = format!("{:x}\r\n", payload.len()).into_bytes();
    body.extend_from_slice(payload);
    body.extend_from_slice(b"\r\n0\r\n");
    if let Some(t) = trailer {
        body.extend_from_slice(format!("x-amz-checksum-crc32:{t}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    let mut headers = vec![
        ("content-encoding".to_string(), "aws-chunked".to_string()),
        ("content-length".to_string(), body.len().to_string()),
        ("host".to_string(), addr.to_string()),
        ("x-amz-content-sha256".to_string(), UNSIGNED.to_string()),
        ("x-amz-date".to_string(), amz_now()),
        (
            "x-amz-decoded-content-length".to_string(),
            payload.len().to_string(),
        ),
        (
            "x-amz-trailer".to_string(),
            "x-amz-checksum-crc32".to_string(),
        ),
    ];
    authorize(&mut headers, path, UNSIGNED);
    headers.retain(|(k, _)| k != "host" && k != "content-length");
    (headers, body)
}

#[tokio::test]
async fn an_announced_trailer_that_never_comes_fails_the_upload() {
    use base64::Engine as _;
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("trailer").send().await.unwrap();
    let addr = server.addr.to_string();
    let payload = data(300_000, 9);
    let crc32 = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &payload) as u32;
    let crc = base64::engine::general_purpose::STANDARD.encode(crc32.to_be_bytes());
    let put = |key: &str, trailer: Option<&str>| {
        let path = format!("/trailer/{key}");
        let (headers, body) = unsigned_with_trailer(&addr, &path, &payload, trailer);
        let addr = server.addr;
        async move {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            raw_request(addr, "PUT", &path, &h, &body).await
        }
    };

    // With its trailer, the upload is checked against it and stored.
    let resp = put("with", Some(&crc)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let before = server.fragment_files().len();
    assert_eq!(resp.header("x-amz-checksum-crc32"), Some(crc.as_str()));
    // A wrong trailer is a bad digest.
    let resp = put("wrong", Some("AAAAAA==")).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains("<Code>BadDigest</Code>"),
        "{}",
        resp.text()
    );
    // No trailer at all is not "nothing to check": the upload fails and nothing is stored.
    let resp = put("without", None).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains("<Code>MalformedTrailerError</Code>"),
        "{}",
        resp.text()
    );
    for key in ["wrong", "without"] {
        let err = s3
            .head_object()
            .bucket("trailer")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(crate::harness::code(&err), "NotFound", "{key}");
    }
    // What the failed uploads wrote is deleted in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.fragment_files().len() != before {
        assert!(
            std::time::Instant::now() < deadline,
            "fragments left behind"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
