use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, Delete, MetadataDirective, ObjectIdentifier, StorageClass,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::harness::{Server, code, data, get_bytes, md5_hex, status};

#[tokio::test]
async fn put_get_round_trips_at_every_size() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("sizes").send().await.unwrap();
    // Empty, tiny, just under and over the inline threshold, one chunk boundary, and three
    // segments of the cess profile (32 MiB of ciphertext each).
    let sizes = [
        0usize,
        1,
        65_520,
        65_521,
        131_071,
        131_072,
        1_000_003,
        70 * 1024 * 1024 + 17,
    ];
    for (i, size) in sizes.iter().enumerate() {
        let body = data(*size, i as u64);
        let key = format!("obj-{size}");
        let put = s3
            .put_object()
            .bucket("sizes")
            .key(&key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.e_tag().unwrap(),
            format!("\"{}\"", md5_hex(&body)),
            "ETag of a single PUT is the MD5"
        );
        assert_eq!(
            put.server_side_encryption().map(|s| s.as_str()),
            Some("AES256")
        );
        let got = s3
            .get_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_length(), Some(*size as i64));
        assert_eq!(got.e_tag().unwrap(), put.e_tag().unwrap());
        assert_eq!(
            got.server_side_encryption().map(|s| s.as_str()),
            Some("AES256")
        );
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(
            bytes.as_ref() == body.as_slice(),
            "bytes differ for size {size}"
        );
    }
}

#[tokio::test]
async fn metadata_and_headers_are_kept() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("meta").send().await.unwrap();
    let expires = DateTime::from_secs(1_900_000_000);
    s3.put_object()
        .bucket("meta")
        .key("doc.txt")
        .body(b"hello".to_vec().into())
        .content_type("text/plain; charset=utf-8")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"doc.txt\"")
        .content_language("en")
        .cache_control("max-age=60")
        .expires(expires)
        .metadata("Colour", "blue")
        .metadata("owner", "alice")
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("meta")
        .key("doc.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"doc.txt\"")
    );
    assert_eq!(head.content_language(), Some("en"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    assert_eq!(head.content_length(), Some(5));
    assert_eq!(head.accept_ranges(), Some("bytes"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("colour").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("owner").map(String::as_str), Some("alice"));

    // response-* overrides change only this response.
    let got = s3
        .get_object()
        .bucket("meta")
        .key("doc.txt")
        .response_content_type("application/octet-stream")
        .response_content_disposition("inline")
        .response_cache_control("no-store")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/octet-stream"));
    assert_eq!(got.content_disposition(), Some("inline"));
    assert_eq!(got.cache_control(), Some("no-store"));
    let head = s3
        .head_object()
        .bucket("meta")
        .key("doc.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));

    // Overwrite replaces data and metadata.
    s3.put_object()
        .bucket("meta")
        .key("doc.txt")
        .body(b"second".to_vec().into())
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("meta")
        .key("doc.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(6));
    assert!(head.metadata().is_none_or(|m| m.is_empty()));
    assert_eq!(get_bytes(&s3, "meta", "doc.txt").await, b"second");
}

#[tokio::test]
async fn digests_are_verified() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("digests").send().await.unwrap();
    let body = data(300_000, 7);
    let good = B64.encode(md5::Md5::digest(&body));
    use md5::Digest as _;
    s3.put_object()
        .bucket("digests")
        .key("ok")
        .body(body.clone().into())
        .content_md5(&good)
        .send()
        .await
        .unwrap();

    let wrong = B64.encode(md5::Md5::digest(b"something else"));
    let err = s3
        .put_object()
        .bucket("digests")
        .key("bad")
        .body(body.clone().into())
        .content_md5(&wrong)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BadDigest");
    assert_eq!(status(&err), 400);
    let err = s3
        .put_object()
        .bucket("digests")
        .key("bad")
        .body(body.clone().into())
        .content_md5("not-base64!!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidDigest");
    let missing = s3
        .head_object()
        .bucket("digests")
        .key("bad")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&missing), 404, "a refused upload stores nothing");

    // x-amz-checksum-* in a header: right and wrong.
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &body) as u32;
    let put = s3
        .put_object()
        .bucket("digests")
        .key("crc")
        .body(body.clone().into())
        .checksum_crc32_c(B64.encode(crc.to_be_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.checksum_crc32_c(),
        Some(B64.encode(crc.to_be_bytes()).as_str())
    );
    let err = s3
        .put_object()
        .bucket("digests")
        .key("crc-bad")
        .body(body.clone().into())
        .checksum_crc32_c(B64.encode(0xdead_beefu32.to_be_bytes()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BadDigest");

    // The SDK's default: an aws-chunked body with the checksum in a trailer.
    let put = s3
        .put_object()
        .bucket("digests")
        .key("trailer")
        .body(ByteStream::from(body.clone()))
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    assert!(put.checksum_sha256().is_some());
    let head = s3
        .head_object()
        .bucket("digests")
        .key("trailer")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_sha256(), put.checksum_sha256());
    assert_eq!(get_bytes(&s3, "digests", "trailer").await, body);
}

#[tokio::test]
async fn range_reads() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("ranges").send().await.unwrap();
    let body = data(40 * 1024 * 1024 + 123, 3);
    s3.put_object()
        .bucket("ranges")
        .key("big")
        .body(body.clone().into())
        .send()
        .await
        .unwrap();
    let small = data(1000, 4);
    s3.put_object()
        .bucket("ranges")
        .key("small")
        .body(small.clone().into())
        .send()
        .await
        .unwrap();
    let n = body.len();
    let cases: Vec<(String, std::ops::Range<usize>)> = vec![
        ("bytes=0-0".into(), 0..1),
        ("bytes=10-65530".into(), 10..65_531),
        ("bytes=65519-65521".into(), 65_519..65_522),
        (format!("bytes={}-", n - 100), n - 100..n),
        ("bytes=-5000".into(), n - 5000..n),
        // Across the first segment boundary (33,546,240 plaintext bytes per cess segment).
        ("bytes=33546000-33547000".into(), 33_546_000..33_547_001),
        (format!("bytes=5-{}", n + 1000), 5..n),
    ];
    for (header, want) in cases {
        let got = s3
            .get_object()
            .bucket("ranges")
            .key("big")
            .range(&header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.content_range(),
            Some(format!("bytes {}-{}/{n}", want.start, want.end - 1).as_str()),
            "{header}"
        );
        assert_eq!(got.content_length(), Some(want.len() as i64));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(
            bytes.as_ref() == &body[want.clone()],
            "bytes differ for {header}"
        );
    }
    let got = s3
        .get_object()
        .bucket("ranges")
        .key("small")
        .range("bytes=990-")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &small[990..]
    );
    let err = s3
        .get_object()
        .bucket("ranges")
        .key("small")
        .range("bytes=1000-2000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRange");
    assert_eq!(status(&err), 416);
    let head = s3
        .head_object()
        .bucket("ranges")
        .key("small")
        .range("bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(10));
}

#[tokio::test]
async fn conditional_reads() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("cond").send().await.unwrap();
    let put = s3
        .put_object()
        .bucket("cond")
        .key("k")
        .body(b"conditional".to_vec().into())
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();
    let head = s3
        .head_object()
        .bucket("cond")
        .key("k")
        .send()
        .await
        .unwrap();
    let modified = *head.last_modified().unwrap();
    let before = DateTime::from_secs(modified.secs() - 3600);
    let after = DateTime::from_secs(modified.secs() + 3600);

    let ok = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match(&etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.body.collect().await.unwrap().into_bytes().as_ref(),
        b"conditional"
    );
    let err = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match("\"0123\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 412);
    assert_eq!(code(&err), "PreconditionFailed");
    let err = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 304);
    let ok = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_none_match("\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.body.collect().await.unwrap().into_bytes().as_ref(),
        b"conditional"
    );
    let err = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_modified_since(after)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 304);
    let ok = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_modified_since(before)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.body.collect().await.unwrap().into_bytes().as_ref(),
        b"conditional"
    );
    let err = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_unmodified_since(before)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 412);
    let ok = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_unmodified_since(after)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.body.collect().await.unwrap().into_bytes().as_ref(),
        b"conditional"
    );
    // If-Match that holds wins over a failing If-Unmodified-Since (RFC 9110 order).
    let ok = s3
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match(&etag)
        .if_unmodified_since(before)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.body.collect().await.unwrap().into_bytes().as_ref(),
        b"conditional"
    );
    let err = s3
        .head_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 304);
}

#[tokio::test]
async fn delete_and_delete_objects() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("del").send().await.unwrap();
    for k in ["a", "b", "c", "d"] {
        s3.put_object()
            .bucket("del")
            .key(k)
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    s3.delete_object()
        .bucket("del")
        .key("a")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("del")
        .key("never-existed")
        .send()
        .await
        .unwrap();
    let err = s3
        .get_object()
        .bucket("del")
        .key("a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);

    let ids = |keys: &[&str]| {
        Delete::builder().set_objects(Some(
            keys.iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
                .collect(),
        ))
    };
    let out = s3
        .delete_objects()
        .bucket("del")
        .delete(ids(&["b", "zzz"]).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["b", "zzz"]);
    assert!(out.errors().is_empty());
    let out = s3
        .delete_objects()
        .bucket("del")
        .delete(ids(&["c", "d"]).quiet(true).build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty(), "quiet mode reports only errors");
    let left = s3.list_objects_v2().bucket("del").send().await.unwrap();
    assert_eq!(left.key_count(), Some(0));
}

#[tokio::test]
async fn copy_object() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("src").send().await.unwrap();
    s3.create_bucket().bucket("dst").send().await.unwrap();
    let body = data(5 * 1024 * 1024 + 3, 11);
    let put = s3
        .put_object()
        .bucket("src")
        .key("orig")
        .body(body.clone().into())
        .content_type("image/png")
        .metadata("tag", "one")
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();

    let out = s3
        .copy_object()
        .bucket("dst")
        .key("copy")
        .copy_source("src/orig")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.copy_object_result().unwrap().e_tag(),
        Some(etag.as_str())
    );
    let head = s3
        .head_object()
        .bucket("dst")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(
        head.metadata().unwrap().get("tag").map(String::as_str),
        Some("one")
    );
    assert_eq!(get_bytes(&s3, "dst", "copy").await, body);

    s3.copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("tag", "two")
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("dst")
        .key("replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata().unwrap().get("tag").map(String::as_str),
        Some("two")
    );

    let err = s3
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/orig")
        .copy_source_if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 412);
    s3.copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/orig")
        .copy_source_if_match(&etag)
        .send()
        .await
        .unwrap();
    let err = s3
        .copy_object()
        .bucket("dst")
        .key("y")
        .copy_source("src/orig")
        .copy_source_if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 412);
    let err = s3
        .copy_object()
        .bucket("src")
        .key("orig")
        .copy_source("src/orig")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequest");
    // Copying onto itself with new metadata is allowed.
    s3.copy_object()
        .bucket("src")
        .key("orig")
        .copy_source("src/orig")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("tag", "three")
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "src", "orig").await, body);
    let err = s3
        .copy_object()
        .bucket("dst")
        .key("z")
        .copy_source("src/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");
}

#[tokio::test]
async fn sse_c_and_storage_classes() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("ssec").send().await.unwrap();
    let key = [42u8; 32];
    let key_b64 = B64.encode(key);
    use md5::Digest as _;
    let key_md5 = B64.encode(md5::Md5::digest(key));
    let body = data(400_000, 5);
    let put = s3
        .put_object()
        .bucket("ssec")
        .key("private")
        .body(body.clone().into())
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .unwrap();
    assert_eq!(put.sse_customer_key_md5(), Some(key_md5.as_str()));
    let got = s3
        .get_object()
        .bucket("ssec")
        .key("private")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .unwrap();
    assert_eq!(got.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        body.as_slice()
    );

    let err = s3
        .get_object()
        .bucket("ssec")
        .key("private")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequest");
    let other = [7u8; 32];
    let err = s3
        .get_object()
        .bucket("ssec")
        .key("private")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(B64.encode(other))
        .sse_customer_key_md5(B64.encode(md5::Md5::digest(other)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    let err = s3
        .put_object()
        .bucket("ssec")
        .key("bad-md5")
        .body(b"x".to_vec().into())
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(B64.encode([0u8; 16]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");

    // REDUCED_REDUNDANCY maps to the 4+2 profile; unknown classes are refused.
    let rr = data(3 * 1024 * 1024, 9);
    s3.put_object()
        .bucket("ssec")
        .key("rr")
        .body(rr.clone().into())
        .storage_class(StorageClass::ReducedRedundancy)
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("ssec")
        .key("rr")
        .send()
        .await
        .unwrap();
    assert_eq!(head.storage_class(), Some(&StorageClass::ReducedRedundancy));
    assert_eq!(get_bytes(&s3, "ssec", "rr").await, rr);
    let err = s3
        .put_object()
        .bucket("ssec")
        .key("glacier")
        .body(b"x".to_vec().into())
        .storage_class(StorageClass::Glacier)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidStorageClass");
}
