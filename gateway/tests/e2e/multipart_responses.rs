//! What multipart objects answer: the Location of a completion, and parts read by number,
//! an empty last part included.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{Server, data};

const MIB: usize = 1024 * 1024;

/// Uploads `parts` as one multipart object; returns the completion's Location.
async fn multipart(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, parts: &[Vec<u8>]) -> String {
    let up = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(p.clone().into())
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
    let out = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.location().unwrap().to_string()
}

#[tokio::test]
async fn completion_location_is_an_absolute_url() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("loc").send().await.unwrap();
    let location = multipart(&s3, "loc", "dir/a b+c é.txt", &[b"x".to_vec()]).await;
    assert_eq!(
        location,
        format!("http://{}/loc/dir/a%20b%2Bc%20%C3%A9.txt", server.addr)
    );
}

#[tokio::test]
async fn parts_by_number_and_an_empty_last_part() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("parts").send().await.unwrap();
    let first = data(5 * MIB, 1);
    multipart(&s3, "parts", "tail", &[first.clone(), Vec::new()]).await;

    let p1 = s3
        .get_object()
        .bucket("parts")
        .key("tail")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        p1.content_range(),
        Some(format!("bytes 0-{}/{}", 5 * MIB - 1, 5 * MIB).as_str())
    );
    assert_eq!(p1.parts_count(), Some(2));
    assert_eq!(p1.body.collect().await.unwrap().into_bytes().len(), 5 * MIB);

    // The empty last part has no byte range to name: it is answered as an empty object is,
    // with no Content-Range and nothing in the body.
    let p2 = s3
        .get_object()
        .bucket("parts")
        .key("tail")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(p2.content_range(), None);
    assert_eq!(p2.content_length(), Some(0));
    assert_eq!(p2.parts_count(), Some(2));
    assert!(p2.body.collect().await.unwrap().into_bytes().is_empty());
    let h2 = s3
        .head_object()
        .bucket("parts")
        .key("tail")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(h2.content_range(), None);
    assert_eq!(h2.content_length(), Some(0));

    // An object of one piece: part 1 is a range over all of it; an empty one has no range.
    s3.put_object()
        .bucket("parts")
        .key("whole")
        .body(b"12345".to_vec().into())
        .send()
        .await
        .unwrap();
    let w = s3
        .get_object()
        .bucket("parts")
        .key("whole")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(w.content_range(), Some("bytes 0-4/5"));
    s3.put_object()
        .bucket("parts")
        .key("empty")
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("parts")
        .key("empty")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(e.content_range(), None);
    assert_eq!(e.content_length(), Some(0));
}
