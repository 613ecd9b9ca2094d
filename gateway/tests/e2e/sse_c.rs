//! SSE-C objects show nothing of their plaintext: their ETags are opaque (not the MD5 of the
//! bytes) yet consistent across PUT, listings, reads, conditions and copies, and the stored
//! commitment to the customer key is salted per object.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;

use crate::harness::{Server, code, data, md5_hex, status};

const MIB: usize = 1024 * 1024;

struct Key {
    key: String,
    md5: String,
}

fn customer_key(byte: u8) -> Key {
    let key = [byte; 32];
    Key {
        key: B64.encode(key),
        md5: B64.encode(md5::Md5::digest(key)),
    }
}

fn bare(etag: &str) -> &str {
    etag.trim_matches('"')
}

fn is_opaque(etag: &str, plain_md5: &str) -> bool {
    let e = bare(etag);
    e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()) && e != plain_md5
}

#[tokio::test]
async fn sse_c_etags_are_opaque_and_consistent() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("ssec").send().await.unwrap();
    let k = customer_key(42);
    let body = data(300_000, 7);
    let plain_md5 = md5_hex(&body);

    // Content-MD5 is still checked against the plaintext...
    let err = s3
        .put_object()
        .bucket("ssec")
        .key("bad")
        .body(body.clone().into())
        .content_md5(B64.encode([0u8; 16]))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BadDigest");
    // ...but the ETag given back is not its MD5.
    let put = s3
        .put_object()
        .bucket("ssec")
        .key("obj")
        .body(body.clone().into())
        .content_md5(B64.encode(md5::Md5::digest(&body)))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();
    assert!(is_opaque(&etag, &plain_md5), "{etag}");

    // The listing shows the same ETag, without the key.
    let listed = s3.list_objects_v2().bucket("ssec").send().await.unwrap();
    assert_eq!(listed.contents()[0].e_tag(), Some(etag.as_str()));

    // Reads with the key: the same ETag, the bytes back; conditions work on that ETag.
    let got = s3
        .get_object()
        .bucket("ssec")
        .key("obj")
        .if_match(&etag)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &body[..]
    );
    let err = s3
        .head_object()
        .bucket("ssec")
        .key("obj")
        .if_none_match(&etag)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 304);
    // A wrong key is refused as before.
    let other = customer_key(7);
    let err = s3
        .get_object()
        .bucket("ssec")
        .key("obj")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other.key)
        .sse_customer_key_md5(&other.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");

    // The same bytes under the same key again: another version, another ETag.
    let again = s3
        .put_object()
        .bucket("ssec")
        .key("twin")
        .body(body.clone().into())
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    assert!(is_opaque(again.e_tag().unwrap(), &plain_md5));
    assert_ne!(again.e_tag(), Some(etag.as_str()));

    // A copy conditioned on the source's ETag goes through; its own ETag is opaque as well.
    let copy = s3
        .copy_object()
        .bucket("ssec")
        .key("copy")
        .copy_source("ssec/obj")
        .copy_source_if_match(&etag)
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&k.key)
        .copy_source_sse_customer_key_md5(&k.md5)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    let copy_etag = copy.copy_object_result().unwrap().e_tag().unwrap();
    assert!(is_opaque(copy_etag, &plain_md5), "{copy_etag}");
    let head = s3
        .head_object()
        .bucket("ssec")
        .key("copy")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(copy_etag));
    // Copied out of SSE-C, the object's ETag is its MD5 again.
    let plain = s3
        .copy_object()
        .bucket("ssec")
        .key("plain")
        .copy_source("ssec/obj")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&k.key)
        .copy_source_sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.copy_object_result().unwrap().e_tag(),
        Some(format!("\"{plain_md5}\"").as_str())
    );

    // Two objects under one customer key keep different commitments to it (salted).
    let cat = deoss::catalogue::Catalogue::open(&format!(
        "sqlite://{}",
        server.data_dir().join("catalogue.db").display()
    ))
    .await
    .unwrap();
    let mac = |key: &'static str| {
        let cat = cat.clone();
        async move {
            cat.object("ssec", key)
                .await
                .unwrap()
                .unwrap()
                .wraps
                .into_iter()
                .find(|w| w.kind == "customer")
                .and_then(|w| w.commitment)
                .unwrap()
        }
    };
    let (a, b) = (mac("obj").await, mac("twin").await);
    assert_ne!(a, b);
    assert!(a.starts_with(b"CKM2") && b.starts_with(b"CKM2"));
    cat.close().await;
}

#[tokio::test]
async fn sse_c_multipart_etags_are_opaque() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("ssec-mpu").send().await.unwrap();
    let k = customer_key(9);
    let up = s3
        .create_multipart_upload()
        .bucket("ssec-mpu")
        .key("big")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let parts = [data(5 * MIB, 1), data(1000, 2)];
    let mut done = Vec::new();
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("ssec-mpu")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .body(p.clone().into())
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .send()
            .await
            .unwrap();
        let etag = out.e_tag().unwrap().to_string();
        assert!(is_opaque(&etag, &md5_hex(p)), "part {n}: {etag}");
        etags.push(etag.clone());
        done.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    let listed = s3
        .list_parts()
        .bucket("ssec-mpu")
        .key("big")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    let listed: Vec<&str> = listed.parts().iter().filter_map(|p| p.e_tag()).collect();
    assert_eq!(listed, etags);
    // The plaintext MD5 of a part does not complete it.
    let err = s3
        .complete_multipart_upload()
        .bucket("ssec-mpu")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(format!("\"{}\"", md5_hex(&parts[0])))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidPart");
    let out = s3
        .complete_multipart_upload()
        .bucket("ssec-mpu")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let etag = out.e_tag().unwrap().to_string();
    let plain_md5s: Vec<u8> = parts
        .iter()
        .flat_map(|p| md5::Md5::digest(p).to_vec())
        .collect();
    let plain_etag = format!("\"{}-2\"", md5_hex(&plain_md5s));
    assert!(etag.ends_with("-2\""), "{etag}");
    assert_ne!(etag, plain_etag);
    let listed = s3
        .list_objects_v2()
        .bucket("ssec-mpu")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents()[0].e_tag(), Some(etag.as_str()));
    let got = s3
        .get_object()
        .bucket("ssec-mpu")
        .key("big")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().len(),
        parts[0].len() + parts[1].len()
    );
}

/// SSE-C reads of every shape need the key and return the right bytes: ranges within and across
/// the parts of a multipart object, part numbers, HEAD, and a copy to a new customer key.
#[tokio::test]
async fn sse_c_ranges_parts_heads_and_copies() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("ssec-read").send().await.unwrap();
    let k = customer_key(3);
    let up = s3
        .create_multipart_upload()
        .bucket("ssec-read")
        .key("mp")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let parts = [data(5 * MIB, 31), data(300_000, 32)];
    let whole: Vec<u8> = parts.concat();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("ssec-read")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(p.clone().into())
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("ssec-read")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();

    let get = |range: Option<String>, part: Option<i32>| {
        let s3 = s3.clone();
        let (key, md5) = (k.key.clone(), k.md5.clone());
        async move {
            let out = s3
                .get_object()
                .bucket("ssec-read")
                .key("mp")
                .set_range(range)
                .set_part_number(part)
                .sse_customer_algorithm("AES256")
                .sse_customer_key(key)
                .sse_customer_key_md5(md5)
                .send()
                .await
                .unwrap();
            let content_range = out.content_range().map(str::to_string);
            let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
            (content_range, bytes)
        }
    };
    // Across the boundary of the two parts (and of 64 KiB encryption chunks).
    let (first, last) = (5 * MIB - 70_000, 5 * MIB + 1_000);
    let (cr, bytes) = get(Some(format!("bytes={first}-{last}")), None).await;
    assert!(bytes == whole[first..=last], "range across parts");
    assert_eq!(
        cr.as_deref(),
        Some(format!("bytes {first}-{last}/{}", whole.len()).as_str())
    );
    let (_, bytes) = get(Some("bytes=-1000".into()), None).await;
    assert!(bytes == whole[whole.len() - 1000..], "suffix range");
    let (_, bytes) = get(None, Some(2)).await;
    assert!(bytes == parts[1], "part 2");

    // HEAD needs the key too, and says the object is SSE-C.
    let err = s3
        .head_object()
        .bucket("ssec-read")
        .key("mp")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let head = s3
        .head_object()
        .bucket("ssec-read")
        .key("mp")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.parts_count(), Some(2));
    assert_eq!(head.sse_customer_key_md5(), Some(k.md5.as_str()));

    // A copy re-encrypts under a new customer key: the old key no longer reads the copy.
    let k2 = customer_key(4);
    s3.copy_object()
        .bucket("ssec-read")
        .key("copy")
        .copy_source("ssec-read/mp")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&k.key)
        .copy_source_sse_customer_key_md5(&k.md5)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k2.key)
        .sse_customer_key_md5(&k2.md5)
        .send()
        .await
        .unwrap();
    let out = s3
        .get_object()
        .bucket("ssec-read")
        .key("copy")
        .range("bytes=100-199")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k2.key)
        .sse_customer_key_md5(&k2.md5)
        .send()
        .await
        .unwrap();
    let bytes = out.body.collect().await.unwrap().into_bytes();
    assert!(bytes.as_ref() == &whole[100..200]);
    let err = s3
        .get_object()
        .bucket("ssec-read")
        .key("copy")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.key)
        .sse_customer_key_md5(&k.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
}
