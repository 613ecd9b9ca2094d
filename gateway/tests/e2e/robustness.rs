//! Requests that go wrong, and what is left afterwards: signatures that do not fit, bodies
//! larger than S3 allows or cut off by a vanishing client, servers killed or stopped
//! mid-request, writers racing on one key, and the disk space collection gives back.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::harness::{Server, code, data, get_bytes, md5_hex, status};
use crate::signed::{Signing, read_response, sha256_hex, signed_head, signed_request};

const MIB: usize = 1024 * 1024;

fn error_code(body: &str) -> &str {
    body.split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or("")
}

#[tokio::test]
async fn signatures_that_do_not_fit_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("sig").send().await.unwrap();
    let ok = signed_request(server.addr, "PUT", "/sig/a", b"hello", &Signing::default()).await;
    assert_eq!(ok.status, 200, "{}", ok.text());

    let skewed = Signing {
        now: time::OffsetDateTime::now_utc() - Duration::from_secs(20 * 60),
        ..Signing::default()
    };
    let resp = signed_request(server.addr, "PUT", "/sig/b", b"hello", &skewed).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(error_code(&resp.text()), "RequestTimeTooSkewed");

    let elsewhere = Signing {
        region: "eu-west-1".into(),
        ..Signing::default()
    };
    let resp = signed_request(server.addr, "PUT", "/sig/c", b"hello", &elsewhere).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(error_code(&resp.text()), "AuthorizationHeaderMalformed");

    let lying = Signing {
        payload_hash: Some(sha256_hex(b"another body")),
        ..Signing::default()
    };
    let resp = signed_request(server.addr, "PUT", "/sig/d", b"hello", &lying).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(error_code(&resp.text()), "XAmzContentSHA256Mismatch");

    for key in ["b", "c", "d"] {
        let err = s3
            .head_object()
            .bucket("sig")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 404, "{key}: nothing was stored");
    }
}

#[tokio::test]
async fn bodies_larger_than_s3_allows_are_refused_before_they_are_read() {
    let server = Server::start();
    server
        .client()
        .create_bucket()
        .bucket("big")
        .send()
        .await
        .unwrap();
    let too_large = 5u64 * 1024 * 1024 * 1024 * 1024 + 1;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = signed_head(
        server.addr,
        "PUT",
        "/big/huge",
        too_large,
        b"",
        &Signing::unsigned_payload(),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0; 4096]).await.unwrap();
    let resp = read_response(&mut stream).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(error_code(&resp.text()), "EntityTooLarge");
}

#[tokio::test]
async fn a_client_that_vanishes_mid_upload_leaves_nothing_behind() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("gone").send().await.unwrap();
    {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = signed_head(
            server.addr,
            "PUT",
            "/gone/half",
            (80 * MIB) as u64,
            b"",
            &Signing::unsigned_payload(),
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Past the first 32 MiB segment, so fragments were written before the client left.
        stream.write_all(&data(45 * MIB, 4)).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server
        .wait_for_fragments(0, "the abandoned upload's fragments are collected")
        .await;
    let err = s3
        .head_object()
        .bucket("gone")
        .key("half")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    // The server is still up and well.
    let body = data(300_000, 5);
    s3.put_object()
        .bucket("gone")
        .key("after")
        .body(body.clone().into())
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "gone", "after").await, body);
}

#[tokio::test]
async fn collection_gives_back_the_space_of_deleted_replaced_and_aborted_data() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("space").send().await.unwrap();
    let put = |key: &'static str, body: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("space")
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    };
    // 40 MiB: two segments of 4 + 8 fragments.
    put("k", data(40 * MIB, 1)).await;
    assert_eq!(server.fragment_count(), 24);
    put("k", b"small now".to_vec()).await;
    server
        .wait_for_fragments(0, "an overwrite frees the old data")
        .await;

    put("k", data(40 * MIB, 2)).await;
    s3.delete_object()
        .bucket("space")
        .key("k")
        .send()
        .await
        .unwrap();
    server
        .wait_for_fragments(0, "a delete frees the data")
        .await;

    let upload = s3
        .create_multipart_upload()
        .bucket("space")
        .key("mp")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    s3.upload_part()
        .bucket("space")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(data(6 * MIB, 3).into())
        .send()
        .await
        .unwrap();
    assert_eq!(server.fragment_count(), 12);
    s3.abort_multipart_upload()
        .bucket("space")
        .key("mp")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    server
        .wait_for_fragments(0, "an abort frees the parts")
        .await;
}

#[tokio::test]
async fn concurrent_puts_of_one_key_leave_one_whole_object() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("same").send().await.unwrap();
    let bodies: Vec<Vec<u8>> = (0..6).map(|i| data(MIB + i, i as u64 + 10)).collect();
    let puts = bodies.iter().map(|b| {
        let s3 = s3.clone();
        let b = b.clone();
        async move {
            s3.put_object()
                .bucket("same")
                .key("k")
                .body(b.into())
                .send()
                .await
                .unwrap()
        }
    });
    futures::future::join_all(puts).await;
    let out = s3
        .get_object()
        .bucket("same")
        .key("k")
        .send()
        .await
        .unwrap();
    let etag = out.e_tag().unwrap().trim_matches('"').to_string();
    let got = out.body.collect().await.unwrap().into_bytes().to_vec();
    let winner = bodies
        .iter()
        .find(|b| **b == got)
        .expect("one PUT's bytes, whole");
    assert_eq!(etag, md5_hex(winner));
    server
        .wait_for_fragments(12, "only the winner's fragments stay")
        .await;
}

#[tokio::test]
async fn kill_during_upload_part_and_complete_leaves_no_torn_object() {
    let mut server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("mpk").send().await.unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("mpk")
        .key("obj")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap().to_string();
    let part1 = data(6 * MIB, 21);
    let p1 = s3
        .upload_part()
        .bucket("mpk")
        .key("obj")
        .upload_id(&id)
        .part_number(1)
        .body(part1.clone().into())
        .send()
        .await
        .unwrap();

    // Part 2 is half sent when the server dies.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let path = format!("/mpk/obj?partNumber=2&uploadId={id}");
    let head = signed_head(
        server.addr,
        "PUT",
        &path,
        (40 * MIB) as u64,
        b"",
        &Signing::unsigned_payload(),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data(35 * MIB, 22)).await.unwrap();
    server.kill9();
    drop(stream);
    server.restart();
    let s3 = server.client();
    let parts = s3
        .list_parts()
        .bucket("mpk")
        .key("obj")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = parts
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [1], "the interrupted part never appears");
    assert_eq!(
        server.fragment_count(),
        12,
        "its fragments were swept at start"
    );

    // The completion races the kill: either it committed whole or not at all.
    let complete = {
        let (s3, id, etag) = (s3.clone(), id.clone(), p1.e_tag().unwrap().to_string());
        tokio::spawn(async move {
            s3.complete_multipart_upload()
                .bucket("mpk")
                .key("obj")
                .upload_id(id)
                .multipart_upload(
                    aws_sdk_s3::types::CompletedMultipartUpload::builder()
                        .parts(
                            aws_sdk_s3::types::CompletedPart::builder()
                                .part_number(1)
                                .e_tag(etag)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.kill9();
    let _ = complete.await;
    server.restart();
    let s3 = server.client();
    match s3.get_object().bucket("mpk").key("obj").send().await {
        Ok(out) => {
            let got = out.body.collect().await.unwrap().into_bytes();
            assert!(
                got.as_ref() == part1.as_slice(),
                "a completed object is whole"
            );
            let err = s3
                .list_parts()
                .bucket("mpk")
                .key("obj")
                .upload_id(&id)
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&err), "NoSuchUpload");
        }
        Err(err) => {
            assert_eq!(code(&err), "NoSuchKey");
            let parts = s3
                .list_parts()
                .bucket("mpk")
                .key("obj")
                .upload_id(&id)
                .send()
                .await
                .unwrap();
            assert_eq!(parts.parts().len(), 1, "the upload is intact");
        }
    }
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let mut server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("drain").send().await.unwrap();
    let body = data(8 * MIB, 31);
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = signed_head(
        server.addr,
        "PUT",
        "/drain/k",
        body.len() as u64,
        &body,
        &Signing::default(),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..MIB]).await.unwrap();
    stream.flush().await.unwrap();
    let addr = server.addr;
    let finish = tokio::spawn(async move {
        // The rest of the body arrives once the server has begun to shut down (it no longer
        // accepts connections).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "SIGTERM was not acted on"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stream.write_all(&body[MIB..]).await.unwrap();
        read_response(&mut stream).await
    });
    let exited = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    let resp = finish.await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (status, mut server) = exited.await.unwrap();
    assert!(
        status.success(),
        "deoss exits cleanly after draining: {status:?}"
    );
    server.restart();
    let s3 = server.client();
    assert_eq!(get_bytes(&s3, "drain", "k").await, data(8 * MIB, 31));
}

#[tokio::test]
async fn a_profile_wider_than_the_stores_is_service_unavailable() {
    let server = Server::start_with_config(
        "[erasure]\nstorage_classes = { REDUCED_REDUNDANCY = \"4+2\", GLACIER = \"10+4\" }\n",
        &[],
    );
    let s3 = server.client();
    s3.create_bucket().bucket("wide").send().await.unwrap();
    let err = s3
        .put_object()
        .bucket("wide")
        .key("k")
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .body(data(300_000, 41).into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 503, "{err:?}");
    assert_eq!(code(&err), "ServiceUnavailable");
    let err = s3
        .head_object()
        .bucket("wide")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
}
