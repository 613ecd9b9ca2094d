use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{Server, code, data, md5_hex};

const MIB: usize = 1024 * 1024;

fn completed(parts: &[(i32, String)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e).build())
                .collect(),
        ))
        .build()
}

#[tokio::test]
async fn multipart_upload_complete_and_read() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let create = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("big.bin")
        .content_type("video/mp4")
        .send()
        .await
        .unwrap();
    let upload_id = create.upload_id().unwrap().to_string();

    let parts_data = [data(5 * MIB, 1), data(6 * MIB + 7, 2), data(100, 3)];
    let mut parts = Vec::new();
    // Upload out of order; re-upload part 2 with the same bytes.
    for n in [2usize, 1, 3, 2] {
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("big.bin")
            .upload_id(&upload_id)
            .part_number(n as i32)
            .body(parts_data[n - 1].clone().into())
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.e_tag().unwrap(),
            format!("\"{}\"", md5_hex(&parts_data[n - 1]))
        );
        parts.retain(|(p, _): &(i32, String)| *p != n as i32);
        parts.push((n as i32, out.e_tag().unwrap().to_string()));
    }
    parts.sort();

    let listed = s3
        .list_parts()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed
            .parts()
            .iter()
            .map(|p| p.part_number().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(listed.parts()[1].size(), Some((6 * MIB + 7) as i64));
    let page = s3
        .list_parts()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .max_parts(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let page2 = s3
        .list_parts()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .max_parts(2)
        .part_number_marker("2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page2
            .parts()
            .iter()
            .map(|p| p.part_number().unwrap())
            .collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(page2.is_truncated(), Some(false));

    let uploads = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    assert_eq!(uploads.uploads()[0].upload_id(), Some(upload_id.as_str()));

    // Completion errors change nothing.
    let err = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[
            (2, parts[1].1.clone()),
            (1, parts[0].1.clone()),
        ]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidPartOrder");
    let err = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[
            (1, parts[0].1.clone()),
            (2, "\"00000000000000000000000000000000\"".into()),
        ]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidPart");
    let err = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[
            (1, parts[0].1.clone()),
            (3, parts[2].1.clone()),
            (2, parts[1].1.clone()),
        ]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidPartOrder");

    let done = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .multipart_upload(completed(&parts))
        .send()
        .await
        .unwrap();
    // ETag: MD5 of the binary part MD5s, then "-3".
    let mut cat = Vec::new();
    for p in &parts_data {
        cat.extend(hex::decode(md5_hex(p)).unwrap());
    }
    assert_eq!(done.e_tag().unwrap(), format!("\"{}-3\"", md5_hex(&cat)));

    let whole: Vec<u8> = parts_data.concat();
    let got = s3
        .get_object()
        .bucket("mpu")
        .key("big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("video/mp4"));
    assert_eq!(got.content_length(), Some(whole.len() as i64));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        whole.as_slice()
    );
    // A range across the part 1 / part 2 boundary, and a part by number.
    let r = s3
        .get_object()
        .bucket("mpu")
        .key("big.bin")
        .range(format!("bytes={}-{}", 5 * MIB - 10, 5 * MIB + 9))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.body.collect().await.unwrap().into_bytes().as_ref(),
        &whole[5 * MIB - 10..5 * MIB + 10]
    );
    let p2 = s3
        .get_object()
        .bucket("mpu")
        .key("big.bin")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(p2.parts_count(), Some(3));
    assert_eq!(
        p2.body.collect().await.unwrap().into_bytes().as_ref(),
        parts_data[1].as_slice()
    );

    let gone = s3
        .list_parts()
        .bucket("mpu")
        .key("big.bin")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&gone), "NoSuchUpload");
}

#[tokio::test]
async fn small_parts_abort_and_part_copy() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("mp2").send().await.unwrap();
    let up = s3
        .create_multipart_upload()
        .bucket("mp2")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let mut parts = Vec::new();
    for n in 1..=2 {
        let e = s3
            .upload_part()
            .bucket("mp2")
            .key("k")
            .upload_id(&up)
            .part_number(n)
            .body(vec![n as u8; 1000].into())
            .send()
            .await
            .unwrap();
        parts.push((n, e.e_tag().unwrap().to_string()));
    }
    let err = s3
        .complete_multipart_upload()
        .bucket("mp2")
        .key("k")
        .upload_id(&up)
        .multipart_upload(completed(&parts))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "EntityTooSmall");
    let err = s3
        .upload_part()
        .bucket("mp2")
        .key("k")
        .upload_id(&up)
        .part_number(10_001)
        .body(vec![1].into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");
    s3.abort_multipart_upload()
        .bucket("mp2")
        .key("k")
        .upload_id(&up)
        .send()
        .await
        .unwrap();
    let err = s3
        .abort_multipart_upload()
        .bucket("mp2")
        .key("k")
        .upload_id(&up)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
    let err = s3
        .upload_part()
        .bucket("mp2")
        .key("k")
        .upload_id("no-such-upload")
        .part_number(1)
        .body(vec![1].into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
    assert!(
        s3.list_multipart_uploads()
            .bucket("mp2")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    );

    // UploadPartCopy: whole source and a byte range of it.
    let source = data(7 * MIB, 21);
    s3.put_object()
        .bucket("mp2")
        .key("source")
        .body(source.clone().into())
        .send()
        .await
        .unwrap();
    let up = s3
        .create_multipart_upload()
        .bucket("mp2")
        .key("assembled")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let p1 = s3
        .upload_part_copy()
        .bucket("mp2")
        .key("assembled")
        .upload_id(&up)
        .part_number(1)
        .copy_source("mp2/source")
        .send()
        .await
        .unwrap();
    let p2 = s3
        .upload_part_copy()
        .bucket("mp2")
        .key("assembled")
        .upload_id(&up)
        .part_number(2)
        .copy_source("mp2/source")
        .copy_source_range("bytes=100-1099")
        .send()
        .await
        .unwrap();
    let err = s3
        .upload_part_copy()
        .bucket("mp2")
        .key("assembled")
        .upload_id(&up)
        .part_number(3)
        .copy_source("mp2/source")
        .copy_source_range(format!("bytes=0-{}", 7 * MIB))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRange");
    let tags = [
        (
            1,
            p1.copy_part_result().unwrap().e_tag().unwrap().to_string(),
        ),
        (
            2,
            p2.copy_part_result().unwrap().e_tag().unwrap().to_string(),
        ),
    ];
    s3.complete_multipart_upload()
        .bucket("mp2")
        .key("assembled")
        .upload_id(&up)
        .multipart_upload(completed(&tags))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("mp2")
        .key("assembled")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let mut want = source.clone();
    want.extend_from_slice(&source[100..1100]);
    assert!(got.as_ref() == want.as_slice());
}
