use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

use crate::harness::{ROOT_AK, ROOT_SK, Server, code, raw_request, status};

/// The path and query of a presigned URL, and its signed headers.
fn target(req: &aws_sdk_s3::presigning::PresignedRequest) -> (String, Vec<(String, String)>) {
    let uri: http::Uri = req.uri().parse().unwrap();
    let headers = req
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (uri.path_and_query().unwrap().to_string(), headers)
}

#[tokio::test]
async fn presigned_urls_work_until_they_expire() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("pre").send().await.unwrap();
    s3.put_object()
        .bucket("pre")
        .key("file.txt")
        .body(b"presigned body".to_vec().into())
        .send()
        .await
        .unwrap();

    let get = s3
        .get_object()
        .bucket("pre")
        .key("file.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let (path, headers) = target(&get);
    let hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .collect();
    let resp = raw_request(server.addr, "GET", &path, &hdrs, b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"presigned body");

    // A presigned PUT from a browser or curl: no SDK, no credentials.
    let put = s3
        .put_object()
        .bucket("pre")
        .key("upload.bin")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let (path, _) = target(&put);
    let resp = raw_request(
        server.addr,
        "PUT",
        &path,
        &[],
        b"uploaded through a presigned URL",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let back = s3
        .get_object()
        .bucket("pre")
        .key("upload.bin")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(back.as_ref(), b"uploaded through a presigned URL");

    // Tampering with the signed URL breaks it.
    let (path, _) = target(&get);
    let tampered = path.replace("file.txt", "upload.bin");
    let resp = raw_request(server.addr, "GET", &tampered, &[], b"").await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.text().contains("SignatureDoesNotMatch"),
        "{}",
        resp.text()
    );

    let short = s3
        .get_object()
        .bucket("pre")
        .key("file.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (path, _) = target(&short);
    let resp = raw_request(server.addr, "GET", &path, &[], b"").await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.text().contains("AccessDenied") && resp.text().contains("expired"),
        "{}",
        resp.text()
    );
}

#[tokio::test]
async fn unsigned_wrongly_signed_and_sigv2_requests_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("locked").send().await.unwrap();
    s3.put_object()
        .bucket("locked")
        .key("k")
        .body(b"v".to_vec().into())
        .send()
        .await
        .unwrap();

    let anon = raw_request(server.addr, "GET", "/locked/k", &[], b"").await;
    assert_eq!(anon.status, 403);
    assert!(
        anon.text().contains("<Code>AccessDenied</Code>"),
        "{}",
        anon.text()
    );
    let anon_put = raw_request(server.addr, "PUT", "/locked/new", &[], b"data").await;
    assert_eq!(anon_put.status, 403);
    let missing = s3
        .head_object()
        .bucket("locked")
        .key("new")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&missing), 404, "nothing was stored");

    let v2 = raw_request(
        server.addr,
        "GET",
        "/locked/k",
        &[
            ("Authorization", &format!("AWS {ROOT_AK}:c2lnbmF0dXJl")),
            ("Date", "Sat, 21 Nov 2026 10:00:00 GMT"),
        ],
        b"",
    )
    .await;
    assert_eq!(v2.status, 400);
    assert!(
        v2.text().contains("InvalidRequest") && v2.text().contains("Signature Version 2"),
        "{}",
        v2.text()
    );
    assert_eq!(v2.header("content-type"), Some("application/xml"));
    let v2_query = raw_request(
        server.addr,
        "GET",
        &format!("/locked/k?AWSAccessKeyId={ROOT_AK}&Expires=2000000000&Signature=abc"),
        &[],
        b"",
    )
    .await;
    assert_eq!(v2_query.status, 400);

    let wrong = server.client_for(ROOT_AK, "not-the-secret-key-at-all-00000000000000");
    let err = wrong.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&err), "SignatureDoesNotMatch");
    assert_eq!(status(&err), 403);
    let unknown = server.client_for("NOSUCHKEY00000000000", ROOT_SK);
    let err = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&err), "InvalidAccessKeyId");

    // Internal routes stay outside S3.
    let health = raw_request(server.addr, "GET", "/-/health", &[], b"").await;
    assert_eq!(
        (health.status, health.body.as_slice()),
        (200, b"ok".as_slice())
    );
}
