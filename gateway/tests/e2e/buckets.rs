use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use crate::harness::{Server, code, status};

#[tokio::test]
async fn bucket_lifecycle_and_errors() {
    let server = Server::start();
    let s3 = server.client();

    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.create_bucket().bucket("beta.logs").send().await.unwrap();
    let again = s3.create_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&again), "BucketAlreadyOwnedByYou");
    assert_eq!(status(&again), 409);

    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(names, ["alpha", "beta.logs"]);

    s3.head_bucket().bucket("alpha").send().await.unwrap();
    let missing = s3
        .head_bucket()
        .bucket("nope-missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&missing), 404);

    let loc = s3
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert!(
        loc.location_constraint()
            .is_none_or(|c| c.as_str().is_empty())
    );

    for bad in ["ab", "Upper-Case", "under_score", "-leading"] {
        let err = s3.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!(status(&err), 400, "bucket name {bad:?} must be refused");
        assert_eq!(code(&err), "InvalidBucketName", "{bad}");
    }
    let wrong_region = s3
        .create_bucket()
        .bucket("gamma")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong_region), "InvalidLocationConstraint");

    s3.put_object()
        .bucket("alpha")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let not_empty = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&not_empty), "BucketNotEmpty");
    assert_eq!(status(&not_empty), 409);
    s3.delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("alpha").send().await.unwrap();
    let gone = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&gone), "NoSuchBucket");
    let err = s3
        .list_objects_v2()
        .bucket("alpha")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchBucket");
}

/// S3 deletes a bucket that holds only multipart uploads in progress, discarding them; s3-tests'
/// clean-up (and many clients) rely on it.
#[tokio::test]
async fn deleting_a_bucket_discards_its_uploads_in_progress() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("pending").send().await.unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("pending")
        .key("big")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    s3.upload_part()
        .bucket("pending")
        .key("big")
        .upload_id(upload_id)
        .part_number(1)
        .body(crate::harness::data(300_000, 9).into())
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("pending").send().await.unwrap();
    let err = s3.head_bucket().bucket("pending").send().await.unwrap_err();
    assert_eq!(status(&err), 404);

    // The name is free and the old upload is not in the new bucket.
    s3.create_bucket().bucket("pending").send().await.unwrap();
    let uploads = s3
        .list_multipart_uploads()
        .bucket("pending")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    let err = s3
        .upload_part()
        .bucket("pending")
        .key("big")
        .upload_id(upload_id)
        .part_number(2)
        .body(b"late".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
}

#[tokio::test]
async fn users_see_only_their_own_buckets() {
    let server = Server::start();
    let root = server.client();
    let (ak, sk) = server.create_user("bob");
    let bob = server.client_for(&ak, &sk);

    root.create_bucket()
        .bucket("roots-bucket")
        .send()
        .await
        .unwrap();
    root.put_object()
        .bucket("roots-bucket")
        .key("secret.txt")
        .body(b"root only".to_vec().into())
        .send()
        .await
        .unwrap();
    bob.create_bucket()
        .bucket("bobs-bucket")
        .send()
        .await
        .unwrap();

    let bobs: Vec<String> = bob
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(bobs, ["bobs-bucket"]);

    let taken = bob
        .create_bucket()
        .bucket("roots-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&taken), "BucketAlreadyExists");
    let denied = bob
        .get_object()
        .bucket("roots-bucket")
        .key("secret.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "AccessDenied");
    assert_eq!(status(&denied), 403);
    let denied = bob
        .put_object()
        .bucket("roots-bucket")
        .key("x")
        .body(b"no".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "AccessDenied");
    let denied = bob
        .list_objects_v2()
        .bucket("roots-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "AccessDenied");
    let denied = bob
        .delete_bucket()
        .bucket("roots-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "AccessDenied");
    let denied = bob
        .head_bucket()
        .bucket("roots-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&denied), 403);
    // Root's object is untouched.
    let body = root
        .get_object()
        .bucket("roots-bucket")
        .key("secret.txt")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(body.into_bytes().as_ref(), b"root only");

    // A deleted key stops working (after the short key cache expires).
    server.admin(&["key", "delete", &ak]);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let err = bob.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&err), "InvalidAccessKeyId");
}
