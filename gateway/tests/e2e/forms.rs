//! Browser form uploads (POST Object) are refused before any of the body is read, while the
//! other POST operations (DeleteObjects, multipart uploads) still work.

use std::time::Duration;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{RawResponse, Server, code, raw_request};

/// Sends only the head of a request that announces `content_length` bytes of body, then reads
/// the response to the end: a server waiting for the body would never answer.
async fn head_only(server: &Server, head: &str) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    RawResponse {
        status: status.parse().unwrap(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
          Content-Type: text/plain\r\n\r\n",
    );
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    body
}

#[tokio::test]
async fn form_uploads_are_refused_before_the_body_is_read() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("forms").send().await.unwrap();

    // A 5 GiB form whose body never comes: the refusal does not wait for it.
    let head = format!(
        "POST /forms HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\
         Content-Length: 5368709120\r\n\r\n",
        server.addr
    );
    let resp = head_only(&server, &head).await;
    assert_eq!(resp.status, 501, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/xml"));
    assert!(
        resp.text().contains("<Code>NotImplemented</Code>"),
        "{}",
        resp.text()
    );
    assert!(resp.text().contains("presigned PUT"), "{}", resp.text());

    // A complete form signed the SigV2 way is refused the same way, and stores nothing.
    let body = form(
        &[
            ("key", "v2.txt"),
            ("AWSAccessKeyId", crate::harness::ROOT_AK),
            (
                "policy",
                "eyJleHBpcmF0aW9uIjoiMjA5OS0wMS0wMVQwMDowMDowMFoifQ==",
            ),
            ("signature", "c2lnbmF0dXJl"),
        ],
        b"hello",
    );
    let resp = raw_request(
        server.addr,
        "POST",
        "/forms",
        &[("content-type", "multipart/form-data; boundary=XyZ")],
        &body,
    )
    .await;
    assert_eq!(resp.status, 501, "{}", resp.text());
    assert!(resp.text().contains("<Code>NotImplemented</Code>"));
    let err = s3
        .head_object()
        .bucket("forms")
        .key("v2.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotFound");

    // The POSTs that are not forms go on working.
    s3.put_object()
        .bucket("forms")
        .key("a")
        .body(b"a".to_vec().into())
        .send()
        .await
        .unwrap();
    let deleted = s3
        .delete_objects()
        .bucket("forms")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("a").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 1);
    let up = s3
        .create_multipart_upload()
        .bucket("forms")
        .key("mpu")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("forms")
        .key("mpu")
        .upload_id(id)
        .part_number(1)
        .body(b"only part".to_vec().into())
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("forms")
        .key("mpu")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}
