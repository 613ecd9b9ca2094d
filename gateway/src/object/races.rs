//! Requests racing each other through the object service (issue 10's holes): a write racing
//! the deletion of its bucket, a part racing its upload's completion, an overwrite racing a
//! read, and a bucket deleted with uploads in progress.

use bytes::Bytes;
use futures::StreamExt;

use super::testing::{body, put_request, service, stored_fragments};
use super::{ByteStream, CompletedPart, Error, ObjectService, Principal, ServiceConfig};
use crate::catalogue::ObjectMeta;

/// A body that yields `first`, tells `started` it was polled, then waits for the rest on the
/// returned sender (the body ends when the sender is dropped).
fn gated(
    first: Vec<u8>,
) -> (
    tokio::sync::mpsc::Sender<Vec<u8>>,
    tokio::sync::oneshot::Receiver<()>,
    ByteStream,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let head = futures::stream::once(async move {
        let _ = started_tx.send(());
        Ok(Bytes::from(first))
    });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Bytes::from(b)), rx))
    });
    (tx, started, Box::pin(head.chain(rest)))
}

async fn read_all(svc: &ObjectService, caller: &Principal, key: &str) -> Vec<u8> {
    let opened = svc.open_object(caller, "test", key, None).await.unwrap();
    let mut stream = opened.read(0..opened.size());
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Drains the collection queue until `left` fragments remain (the clean-up of a refused upload
/// runs in a task of its own); fails after a generous deadline rather than hanging.
async fn collect_until(svc: &ObjectService, left: usize, why: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        svc.drain_gc_queue().await.unwrap();
        let stored = stored_fragments(svc).await;
        if stored == left {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{why}: {stored} fragments left, not {left}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_put_racing_delete_bucket_never_lands_in_the_next_owners_bucket() {
    let (_dir, svc, alice) = service(12, ServiceConfig::default()).await;
    let (rest, started, body) = gated(vec![1; 200_000]);
    let upload = tokio::spawn({
        let (svc, alice) = (svc.clone(), alice.clone());
        async move { svc.put_object(&alice, put_request("k", body)).await }
    });
    started.await.unwrap();
    // The bucket is empty: it goes, and another user takes the name.
    svc.delete_bucket(&alice, "test").await.unwrap();
    let bob = Principal::user("u2");
    svc.create_bucket(&bob, "test", None).await.unwrap();
    rest.send(vec![2; 100_000]).await.unwrap();
    drop(rest);
    let out = upload.await.unwrap();
    assert!(matches!(out, Err(Error::NoSuchBucket { .. })), "{out:?}");
    let seen = svc.head_object(&bob, "test", "k", None).await;
    assert!(matches!(seen, Err(Error::NoSuchKey { .. })), "{seen:?}");
    collect_until(&svc, 0, "the refused upload is collected").await;
}

#[tokio::test]
async fn a_part_stored_after_completion_fails_and_leaves_the_object_alone() {
    let (_dir, svc, caller) = service(12, ServiceConfig::default()).await;
    let id = svc
        .create_multipart_upload(&caller, "test", "mp", ObjectMeta::default(), None, None)
        .await
        .unwrap();
    let first = vec![5u8; 300_000];
    let part = svc
        .upload_part(
            &caller,
            "test",
            "mp",
            &id,
            1,
            None,
            None,
            None,
            body(first.clone()),
            None,
        )
        .await
        .unwrap();
    // A retry of part 1 is under way while the client completes with the first one.
    let (rest, started, retry_body) = gated(vec![6; 300_000]);
    let retry = tokio::spawn({
        let (svc, caller, id) = (svc.clone(), caller.clone(), id.clone());
        async move {
            svc.upload_part(
                &caller, "test", "mp", &id, 1, None, None, None, retry_body, None,
            )
            .await
        }
    });
    started.await.unwrap();
    let done = [CompletedPart {
        part_number: 1,
        etag: part.etag,
    }];
    svc.complete_multipart_upload(&caller, "test", "mp", &id, &done)
        .await
        .unwrap();
    drop(rest);
    let out = retry.await.unwrap();
    assert!(matches!(out, Err(Error::NoSuchUpload { .. })), "{out:?}");
    assert_eq!(read_all(&svc, &caller, "mp").await, first);
    collect_until(&svc, 12, "only the completed part is kept").await;
}

#[tokio::test]
async fn a_read_in_progress_keeps_the_data_an_overwrite_replaced() {
    let cfg = ServiceConfig {
        default_profile: "2+1".into(),
        ..ServiceConfig::default()
    };
    let (_dir, svc, caller) = service(3, cfg).await;
    let old: Vec<u8> = (0..40 << 20).map(|i: usize| (i / 4093) as u8).collect();
    svc.put_object(&caller, put_request("k", body(old.clone())))
        .await
        .unwrap();
    let opened = svc.open_object(&caller, "test", "k", None).await.unwrap();
    let mut stream = opened.read(0..opened.size());
    drop(opened);
    let mut got = stream.next().await.unwrap().unwrap().to_vec();

    svc.put_object(&caller, put_request("k", body(vec![9; 300_000])))
        .await
        .unwrap();
    let report = svc.drain_gc_queue().await.unwrap();
    assert!(report.leased > 0, "{report:?}");
    assert_eq!(report.deleted, 0, "{report:?}");
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.expect("the read goes on after the overwrite"));
    }
    assert!(got == old, "the read returns the old object whole");
    drop(stream);

    // The read is over: its data can go now.
    collect_until(&svc, 3, "only the new object's fragments are left").await;
    assert_eq!(read_all(&svc, &caller, "k").await, vec![9; 300_000]);
}

#[tokio::test]
async fn deleting_a_bucket_aborts_its_uploads_in_progress() {
    let (_dir, svc, caller) = service(12, ServiceConfig::default()).await;
    let id = svc
        .create_multipart_upload(&caller, "test", "mp", ObjectMeta::default(), None, None)
        .await
        .unwrap();
    svc.upload_part(
        &caller,
        "test",
        "mp",
        &id,
        1,
        None,
        None,
        None,
        body(vec![1; 300_000]),
        None,
    )
    .await
    .unwrap();
    svc.delete_bucket(&caller, "test").await.unwrap();
    let gone = svc
        .list_multipart_uploads(&caller, "test", "", "", "", 10)
        .await;
    assert!(matches!(gone, Err(Error::NoSuchBucket { .. })), "{gone:?}");
    collect_until(&svc, 0, "the aborted part is collected").await;
    // The name is free again, with nothing of the old uploads in it.
    svc.create_bucket(&caller, "test", None).await.unwrap();
    let (uploads, _) = svc
        .list_multipart_uploads(&caller, "test", "", "", "", 10)
        .await
        .unwrap();
    assert!(uploads.is_empty());
}
