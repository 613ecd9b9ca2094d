//! User metadata limits.

use aws_sdk_s3::types::MetadataDirective;

use crate::harness::{Server, code, status};

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
