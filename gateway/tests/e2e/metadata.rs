//! User metadata limits, and the `response-*` overrides of GET and HEAD.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::MetadataDirective;

use crate::harness::{Server, code, raw_request, status};

/// One `x-amz-meta-` entry whose name and value together are `total` bytes.
fn meta_of(total: usize) -> (String, String) {
    ("big".to_string(), "v".repeat(total - "big".len()))
}

#[tokio::test]
async fn metadata_over_2_kib_is_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("meta").send().await.unwrap();

    // Exactly 2 KiB of names and values is allowed...
    let (k, v) = meta_of(2048);
    s3.put_object()
        .bucket("meta")
        .key("fits")
        .metadata(&k, &v)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("meta")
        .key("fits")
        .send()
        .await
        .unwrap();
    assert_eq!(head.metadata().unwrap().get("big"), Some(&v));

    // ...one byte more is not, spread over several entries or not, and nothing is stored.
    let (k, v) = meta_of(2049);
    let err = s3
        .put_object()
        .bucket("meta")
        .key("too-big")
        .metadata(&k, &v)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "MetadataTooLarge");
    assert_eq!(status(&err), 400);
    let err = s3
        .put_object()
        .bucket("meta")
        .key("too-big")
        .metadata("a", "x".repeat(1000))
        .metadata("b", "y".repeat(1000))
        .metadata("c", "z".repeat(50))
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "MetadataTooLarge");
    let err = s3
        .head_object()
        .bucket("meta")
        .key("too-big")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotFound");

    // CopyObject with REPLACE takes the new metadata, so it is checked too.
    let err = s3
        .copy_object()
        .bucket("meta")
        .key("copy")
        .copy_source("meta/fits")
        .metadata_directive(MetadataDirective::Replace)
        .metadata(&k, &v)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "MetadataTooLarge");
    let err = s3
        .head_object()
        .bucket("meta")
        .key("copy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotFound");

    // And CreateMultipartUpload, which would otherwise carry it to the object.
    let err = s3
        .create_multipart_upload()
        .bucket("meta")
        .key("mpu")
        .metadata(&k, &v)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "MetadataTooLarge");
    let uploads = s3
        .list_multipart_uploads()
        .bucket("meta")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
}

#[tokio::test]
async fn response_overrides_on_get_and_head() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("over").send().await.unwrap();
    s3.put_object()
        .bucket("over")
        .key("doc")
        .content_type("text/plain")
        .cache_control("no-cache")
        .body(b"hello".to_vec().into())
        .send()
        .await
        .unwrap();
    let expires = DateTime::from_secs(4_102_444_800); // 2100-01-01
    let got = s3
        .get_object()
        .bucket("over")
        .key("doc")
        .response_content_type("application/x-over")
        .response_content_language("fr")
        .response_expires(expires)
        .response_cache_control("max-age=60")
        .response_content_disposition("attachment; filename=\"o.txt\"")
        .response_content_encoding("identity")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/x-over"));
    assert_eq!(got.content_language(), Some("fr"));
    assert_eq!(got.expires_string(), Some("Fri, 01 Jan 2100 00:00:00 GMT"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(
        got.content_disposition(),
        Some("attachment; filename=\"o.txt\"")
    );
    assert_eq!(got.content_encoding(), Some("identity"));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"hello"
    );

    let head = s3
        .head_object()
        .bucket("over")
        .key("doc")
        .response_content_type("application/x-over")
        .response_content_disposition("inline")
        .response_cache_control("max-age=60")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/x-over"));
    assert_eq!(head.content_disposition(), Some("inline"));
    assert_eq!(head.cache_control(), Some("max-age=60"));

    // A presigned URL carries them in its signed query.
    let presigned = s3
        .get_object()
        .bucket("over")
        .key("doc")
        .response_content_disposition("attachment; filename=\"p.txt\"")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    let resp = raw_request(
        server.addr,
        "GET",
        uri.path_and_query().unwrap().as_str(),
        &[],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-disposition"),
        Some("attachment; filename=\"p.txt\"")
    );
    // Not stored: a plain GET has the object's own headers.
    let plain = s3
        .get_object()
        .bucket("over")
        .key("doc")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.content_type(), Some("text/plain"));
    assert_eq!(plain.cache_control(), Some("no-cache"));

    // Unsigned, they are refused as S3 refuses them; without them, anonymous is just denied.
    let resp = raw_request(
        server.addr,
        "GET",
        "/over/doc?response-content-type=text%2Fhtml",
        &[],
        b"",
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("<Code>InvalidRequest</Code>"));
    let resp = raw_request(server.addr, "GET", "/over/doc", &[], b"").await;
    assert_eq!(resp.status, 403, "{}", resp.text());
}
