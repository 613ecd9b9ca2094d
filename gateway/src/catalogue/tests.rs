//! One catalogue suite, run against SQLite always and against PostgreSQL when
//! `DEOSS_TEST_POSTGRES_URL` names a server (CI sets it; with `CI=true` its absence fails).

use sqlx::AssertSqlSafe;

use super::buckets::{CreateBucket, DeleteBucket};
use super::multipart::{ChosenPart, Completed};
use super::objects::Replaced;
use super::*;
use crate::store::FragmentHash;

pub(crate) async fn sqlite_catalogue() -> (tempfile::TempDir, Catalogue) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalogue.db").display()
    );
    let cat = Catalogue::open(&url).await.unwrap();
    (dir, cat)
}

/// A fresh database on the test PostgreSQL server, or `None` when none is configured.
pub(crate) async fn postgres_catalogue() -> Option<Catalogue> {
    let Ok(admin_url) = std::env::var("DEOSS_TEST_POSTGRES_URL") else {
        deoss_chain_client::testkit::skip(
            "the PostgreSQL catalogue suite needs DEOSS_TEST_POSTGRES_URL (a PostgreSQL server)",
        );
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("deoss_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&admin_url)
        .await
        .expect("connect to DEOSS_TEST_POSTGRES_URL");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    Some(Catalogue::open(&format!("{base}/{name}")).await.unwrap())
}

fn hash(n: u8) -> FragmentHash {
    FragmentHash::of(&[n])
}

pub(crate) fn extent(part: u32, fragments: u32) -> ExtentRecord {
    ExtentRecord {
        part,
        size: 1000 + u64::from(part),
        md5: format!("{part:032x}"),
        nonce_prefix: [part as u8; 7],
        inline_data: if fragments == 0 {
            Some(vec![1, 2, 3])
        } else {
            None
        },
        k: 4,
        m: 8,
        fragment_size: 8 << 20,
        checksum: Some(Checksum {
            algorithm: "CRC32".into(),
            value: "AAAAAA==".into(),
        }),
        created_ms: now_ms(),
        segment_hashes: Some(
            (0..fragments.div_ceil(12))
                .map(|i| hash(200 + i as u8))
                .collect(),
        ),
        fragments: (0..fragments)
            .map(|i| FragmentRecord {
                segment: i / 12,
                idx: i % 12,
                hash: hash((part * 50 + i) as u8),
                store: format!("s{}", i % 12),
            })
            .collect(),
    }
}

/// A master-key wrap of made-up bytes.
pub(crate) fn master_wrap(byte: u8) -> Vec<KeyWrapRecord> {
    vec![KeyWrapRecord {
        kind: "master".into(),
        wrapped: vec![byte; 65],
        commitment: None,
    }]
}

/// The incarnation id test buckets are made with.
pub(crate) fn bid(bucket: &str) -> String {
    format!("id-{bucket}")
}

/// Makes bucket `name` (incarnation [`bid`]) if it does not exist yet.
pub(crate) async fn make_bucket(cat: &Catalogue, name: &str) {
    cat.create_bucket(&Bucket {
        name: name.into(),
        id: bid(name),
        owner_id: "u1".into(),
        profile: "cess".into(),
        created_ms: now_ms(),
        territory: None,
    })
    .await
    .unwrap();
}

pub(crate) fn object(bucket: &str, key: &str, version: &str) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version.into(),
        size: 42,
        etag: "\"abc\"".into(),
        last_modified_ms: now_ms(),
        meta: ObjectMeta {
            content_type: Some("text/plain".into()),
            ..ObjectMeta::default()
        },
        storage_class: "STANDARD".into(),
        wraps: master_wrap(9),
        checksum: None,
        parts_count: 0,
    }
}

async fn users_and_keys(cat: &Catalogue) {
    let alice = cat.create_user("alice").await.unwrap().unwrap();
    assert!(cat.create_user("alice").await.unwrap().is_none());
    let rec = AccessKeyRecord {
        access_key: "AKALICE".into(),
        user_id: alice.id.clone(),
        secret_sealed: vec![1, 2, 3],
        created_ms: now_ms(),
    };
    cat.create_key(&rec).await.unwrap();
    assert_eq!(
        cat.access_key("AKALICE")
            .await
            .unwrap()
            .unwrap()
            .secret_sealed,
        vec![1, 2, 3]
    );
    assert_eq!(cat.list_keys(&alice.id).await.unwrap().len(), 1);
    assert!(cat.delete_key("AKALICE").await.unwrap());
    assert!(!cat.delete_key("AKALICE").await.unwrap());
    assert!(cat.access_key("AKALICE").await.unwrap().is_none());
    assert_eq!(cat.list_users().await.unwrap().len(), 1);
}

async fn buckets(cat: &Catalogue) {
    let b = Bucket {
        name: "photos".into(),
        id: bid("photos"),
        owner_id: "u1".into(),
        profile: "cess".into(),
        created_ms: now_ms(),
        territory: Some("t1".into()),
    };
    assert_eq!(cat.create_bucket(&b).await.unwrap(), CreateBucket::Created);
    assert_eq!(
        cat.create_bucket(&b).await.unwrap(),
        CreateBucket::Exists {
            owner_id: "u1".into()
        }
    );
    assert_eq!(cat.list_buckets("u1").await.unwrap().len(), 1);
    assert!(cat.list_buckets("u2").await.unwrap().is_empty());
    cat.commit_object(
        &bid("photos"),
        &object("photos", "a", "v1"),
        &[extent(0, 0)],
    )
    .await
    .unwrap();
    assert_eq!(
        cat.delete_bucket("photos", &bid("photos")).await.unwrap(),
        DeleteBucket::NotEmpty
    );
    cat.delete_object("photos", &bid("photos"), "a")
        .await
        .unwrap();
    assert_eq!(
        cat.delete_bucket("photos", &bid("photos")).await.unwrap(),
        DeleteBucket::Deleted { aborted_uploads: 0 }
    );
    assert_eq!(
        cat.delete_bucket("photos", &bid("photos")).await.unwrap(),
        DeleteBucket::Missing
    );
}

async fn objects_replace_and_collect(cat: &Catalogue) {
    make_bucket(cat, "b").await;
    let first = object("b", "k", "v1");
    assert_eq!(
        cat.commit_object(&bid("b"), &first, &[extent(0, 24)])
            .await
            .unwrap(),
        Replaced::Nothing
    );
    let got = cat.object("b", "k").await.unwrap().unwrap();
    assert_eq!(got.version_id, "v1");
    assert_eq!(got.meta.content_type.as_deref(), Some("text/plain"));
    let extents = cat.extents("v1").await.unwrap();
    assert_eq!(extents.len(), 1);
    assert_eq!(extents[0].fragments.len(), 24);
    assert_eq!(extents[0].fragments[13].segment, 1);
    assert_eq!(extents[0].checksum.as_ref().unwrap().algorithm, "CRC32");
    assert!(cat.fragment_referenced(hash(0), "s0").await.unwrap());

    assert_eq!(
        cat.commit_object(&bid("b"), &object("b", "k", "v2"), &[extent(0, 0)])
            .await
            .unwrap(),
        Replaced::Previous
    );
    assert_eq!(
        cat.object("b", "k").await.unwrap().unwrap().version_id,
        "v2"
    );
    assert!(cat.extents("v1").await.unwrap().is_empty());
    let queued = cat.gc_batch(100).await.unwrap();
    assert_eq!(queued.len(), 24);
    assert!(!cat.fragment_referenced(hash(0), "s0").await.unwrap());
    let ids: Vec<i64> = queued.iter().map(|e| e.id).collect();
    cat.gc_done_many(&ids).await.unwrap();
    assert!(cat.gc_batch(100).await.unwrap().is_empty());
    assert_eq!(
        cat.delete_object("b", &bid("b"), "k").await.unwrap(),
        Replaced::Previous
    );
    assert_eq!(
        cat.delete_object("b", &bid("b"), "k").await.unwrap(),
        Replaced::Nothing
    );
}

async fn listing_order_and_prefix(cat: &Catalogue) {
    make_bucket(cat, "list").await;
    // Bytewise order: uppercase before lowercase, '/' (0x2f) before '0', multi-byte last.
    let keys = ["a/1", "a/2", "a0", "B", "b", "é", "a/", "a%_x"];
    for (i, k) in keys.iter().enumerate() {
        cat.commit_object(
            &bid("list"),
            &object("list", k, &format!("lv{i}")),
            &[extent(0, 0)],
        )
        .await
        .unwrap();
    }
    let all: Vec<String> = cat
        .list_objects("list", "", "", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(all, ["B", "a%_x", "a/", "a/1", "a/2", "a0", "b", "é"]);
    let a: Vec<String> = cat
        .list_objects("list", "a/", "", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(a, ["a/", "a/1", "a/2"]);
    let after: Vec<String> = cat
        .list_objects("list", "a", "a/1", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(after, ["a/2", "a0"]);
    let pct: Vec<String> = cat
        .list_objects("list", "a%", "", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(pct, ["a%_x"]);
}

async fn multipart_lifecycle(cat: &Catalogue) {
    make_bucket(cat, "mp").await;
    let up = UploadRecord {
        upload_id: "up1".into(),
        bucket: "mp".into(),
        bucket_id: bid("mp"),
        key: "big".into(),
        version_id: "mv1".into(),
        owner_id: "u1".into(),
        initiated_ms: now_ms(),
        meta: ObjectMeta::default(),
        storage_class: "STANDARD".into(),
        profile: "cess".into(),
        wraps: master_wrap(1),
    };
    cat.create_upload(&up).await.unwrap();
    let up2 = UploadRecord {
        upload_id: "up2".into(),
        version_id: "mv2".into(),
        ..up.clone()
    };
    cat.create_upload(&up2).await.unwrap();
    assert_eq!(
        cat.list_uploads("mp", "", "", "", 10).await.unwrap().len(),
        2
    );
    assert_eq!(
        cat.list_uploads("mp", "", "big", "up1", 10).await.unwrap()[0].upload_id,
        "up2"
    );
    for p in 1..=3 {
        cat.put_part(&up, &extent(p, 12)).await.unwrap();
    }
    // Re-uploading part 2 replaces it and queues the old fragments.
    let mut again = extent(2, 12);
    again
        .fragments
        .iter_mut()
        .for_each(|f| f.hash = FragmentHash::of(&[f.idx as u8, 200]));
    cat.put_part(&up, &again).await.unwrap();
    assert_eq!(cat.gc_batch(100).await.unwrap().len(), 12);
    let mut rec = object("mp", "big", "mv1");
    rec.parts_count = 2;
    let chosen: Vec<ChosenPart> = [1, 2]
        .map(|part| ChosenPart {
            part,
            md5: extent(part, 0).md5,
        })
        .into();
    // A part that changed since the request checked it stops the completion.
    let stale = [ChosenPart {
        part: 1,
        md5: "0".repeat(32),
    }];
    assert_eq!(
        cat.complete_upload(&up, &rec, &stale).await.unwrap(),
        Completed::PartChanged(1)
    );
    assert!(cat.object("mp", "big").await.unwrap().is_none());
    assert_eq!(
        cat.complete_upload(&up, &rec, &chosen).await.unwrap(),
        Completed::Done
    );
    assert_eq!(
        cat.complete_upload(&up, &rec, &chosen).await.unwrap(),
        Completed::UploadGone
    );
    let parts: Vec<u32> = cat
        .extents("mv1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.part)
        .collect();
    assert_eq!(parts, [1, 2]);
    assert_eq!(cat.gc_batch(100).await.unwrap().len(), 24);
    assert!(matches!(
        cat.put_part(&up, &extent(4, 12)).await,
        Err(CatalogueError::NoSuchUpload(_))
    ));
    cat.put_part(&up2, &extent(1, 12)).await.unwrap();
    assert!(cat.abort_upload("up2").await.unwrap());
    assert!(!cat.abort_upload("up2").await.unwrap());
    assert!(
        cat.list_uploads("mp", "", "", "", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(cat.gc_batch(100).await.unwrap().len(), 36);
}

/// The outbox: a declaration with its object, a deletion when it is replaced or deleted, the
/// order in which rows come due, and the segment hashes of extents.
async fn settlement_outbox(cat: &Catalogue) {
    make_bucket(cat, "s").await;
    let declare = |fid: &str| NewSettlement {
        gateway: "gw".into(),
        state: SettlementState::Pending,
        fid: Some(fid.into()),
        owner: Some("owner".into()),
        request: Some("{}".into()),
        reason: None,
    };
    cat.commit_object_settled(
        &bid("s"),
        &object("s", "k", "sv1"),
        &[extent(0, 24)],
        Some(&declare("f1")),
    )
    .await
    .unwrap();
    let ext = cat.extents("sv1").await.unwrap();
    assert_eq!(ext[0].segment_hashes.as_ref().unwrap().len(), 2);
    let row = cat.settlement_of_version("sv1").await.unwrap().unwrap();
    assert_eq!(
        (row.kind, row.state, row.fid.as_deref()),
        (
            SettlementKind::Declare,
            SettlementState::Pending,
            Some("f1")
        )
    );
    // Replacing the object queues the deletion of the first version's order.
    cat.commit_object_settled(
        &bid("s"),
        &object("s", "k", "sv2"),
        &[extent(0, 12)],
        Some(&declare("f2")),
    )
    .await
    .unwrap();
    let f1 = cat.settlement_of_fid("f1").await.unwrap();
    assert_eq!(f1.len(), 2);
    assert_eq!(f1[1].kind, SettlementKind::Delete);
    assert_eq!(f1[1].owner.as_deref(), Some("owner"));
    // Due order: the oldest row first; a deletion waits for its declaration.
    let due = cat.settlement_due("gw", now_ms()).await.unwrap().unwrap();
    assert_eq!(due.id, f1[0].id);
    cat.settlement_update(
        due.id,
        SettlementState::Failed,
        None,
        Some("no"),
        1,
        now_ms(),
    )
    .await
    .unwrap();
    let due = cat.settlement_due("gw", now_ms()).await.unwrap().unwrap();
    assert_eq!(
        due.id, f1[1].id,
        "the deletion is due once its declaration is settled"
    );
    cat.settlement_update(
        due.id,
        SettlementState::Pending,
        None,
        Some("down"),
        1,
        now_ms() + 60_000,
    )
    .await
    .unwrap();
    let due = cat.settlement_due("gw", now_ms()).await.unwrap().unwrap();
    assert_eq!(
        due.fid.as_deref(),
        Some("f2"),
        "a row backing off is skipped"
    );
    cat.settlement_update(
        due.id,
        SettlementState::Declared,
        Some(7),
        None,
        1,
        now_ms(),
    )
    .await
    .unwrap();
    assert!(cat.settlement_due("gw", now_ms()).await.unwrap().is_none());
    assert!(
        cat.settlement_due("other", i64::MAX)
            .await
            .unwrap()
            .is_none()
    );
    // Deleting the object queues the deletion of a declared order; a `none` row gets none.
    cat.delete_object("s", &bid("s"), "k").await.unwrap();
    let f2 = cat.settlement_of_fid("f2").await.unwrap();
    assert_eq!(f2.len(), 2);
    assert_eq!(f2[1].kind, SettlementKind::Delete);
    let none = NewSettlement {
        state: SettlementState::None,
        fid: None,
        request: None,
        reason: Some("inline".into()),
        ..declare("x")
    };
    cat.commit_object_settled(
        &bid("s"),
        &object("s", "n", "sv3"),
        &[extent(0, 0)],
        Some(&none),
    )
    .await
    .unwrap();
    cat.delete_object("s", &bid("s"), "n").await.unwrap();
    let recent = cat.settlement_recent(10).await.unwrap();
    assert_eq!(recent.len(), 5);
    assert_eq!(recent[0].state, SettlementState::None);
    assert_eq!(cat.settlement_pending_count("gw").await.unwrap(), 2);
}

/// Many writers at once: each is answered with its own outcome, a failing one changes nothing,
/// and everything the others wrote is there afterwards.
async fn concurrent_writers(cat: &Catalogue) {
    make_bucket(cat, "grp").await;
    let writers = (0..48u32).map(|i| {
        let cat = cat.clone();
        async move {
            let key = format!("k{i:02}");
            if i % 8 == 7 {
                // Writes a row, then fails: the row must not survive.
                let bad = key.clone();
                let out = cat
                    .write_grouped::<()>(Box::new(move |conn| {
                        Box::pin(async move {
                            super::objects::replace_object_row(conn, &object("grp", &bad, "vbad"))
                                .await?;
                            Err(CatalogueError::Corrupt("refused on purpose".into()))
                        })
                    }))
                    .await;
                assert!(matches!(out, Err(CatalogueError::Corrupt(_))), "{out:?}");
                return;
            }
            cat.commit_object(
                &bid("grp"),
                &object("grp", &key, &format!("v{i}")),
                &[extent(0, 0)],
            )
            .await
            .unwrap();
            if i % 2 == 1 {
                let gone = cat.delete_object("grp", &bid("grp"), &key).await.unwrap();
                assert_eq!(gone, Replaced::Previous);
            }
        }
    });
    futures::future::join_all(writers).await;
    let listed = cat.list_objects("grp", "", "", 1000).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let expected: Vec<String> = (0..48u32)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("k{i:02}"))
        .collect();
    assert_eq!(keys, expected);
}

/// A write admitted to one incarnation of a bucket never lands in the next one (issue 10,
/// hole 1): the bucket was deleted and created again by another user meanwhile.
async fn writes_commit_only_into_their_bucket_incarnation(cat: &Catalogue) {
    make_bucket(cat, "inc").await;
    let up = UploadRecord {
        upload_id: "inc-up".into(),
        bucket: "inc".into(),
        bucket_id: bid("inc"),
        key: "k".into(),
        version_id: "inc-mv".into(),
        owner_id: "u1".into(),
        initiated_ms: now_ms(),
        meta: ObjectMeta::default(),
        storage_class: "STANDARD".into(),
        profile: "cess".into(),
        wraps: master_wrap(1),
    };
    cat.create_upload(&up).await.unwrap();
    assert_eq!(
        cat.delete_bucket("inc", &bid("inc")).await.unwrap(),
        DeleteBucket::Deleted { aborted_uploads: 1 },
        "uploads in progress do not keep a bucket alive"
    );
    let theirs = Bucket {
        name: "inc".into(),
        id: "id-inc-2".into(),
        owner_id: "u2".into(),
        profile: "cess".into(),
        created_ms: now_ms(),
        territory: None,
    };
    assert_eq!(
        cat.create_bucket(&theirs).await.unwrap(),
        CreateBucket::Created
    );
    let late = cat
        .commit_object(&bid("inc"), &object("inc", "k", "inc-v1"), &[extent(0, 12)])
        .await;
    assert!(
        matches!(late, Err(CatalogueError::NoSuchBucket(_))),
        "{late:?}"
    );
    assert!(cat.object("inc", "k").await.unwrap().is_none());
    assert!(cat.extents("inc-v1").await.unwrap().is_empty());
    let late = cat
        .create_upload(&UploadRecord {
            upload_id: "inc-up2".into(),
            ..up.clone()
        })
        .await;
    assert!(
        matches!(late, Err(CatalogueError::NoSuchBucket(_))),
        "{late:?}"
    );
    assert!(matches!(
        cat.put_part(&up, &extent(1, 12)).await,
        Err(CatalogueError::NoSuchBucket(_) | CatalogueError::NoSuchUpload(_))
    ));
    let late = cat.delete_object("inc", &bid("inc"), "k").await;
    assert!(
        matches!(late, Err(CatalogueError::NoSuchBucket(_))),
        "{late:?}"
    );
    assert_eq!(
        cat.delete_bucket("inc", &bid("inc")).await.unwrap(),
        DeleteBucket::Missing,
        "an old incarnation cannot delete the new one"
    );
    assert!(cat.bucket("inc").await.unwrap().is_some());
    // The same writes into the live incarnation go through.
    cat.commit_object("id-inc-2", &object("inc", "k", "inc-v2"), &[extent(0, 0)])
        .await
        .unwrap();
    assert_eq!(cat.list_objects("inc", "", "", 10).await.unwrap().len(), 1);
}

/// DeleteBucket racing commits into the bucket: whichever order the database picks, a deleted
/// bucket holds no object afterwards (on PostgreSQL these run truly in parallel).
async fn delete_bucket_racing_commits_leaves_nothing_behind(cat: &Catalogue) {
    for round in 0..10 {
        let name = format!("race{round}");
        make_bucket(cat, &name).await;
        let writers = (0..6).map(|i| {
            let (cat, name) = (cat.clone(), name.clone());
            async move {
                let rec = object(&name, &format!("k{i}"), &format!("{name}-v{i}"));
                match cat.commit_object(&bid(&name), &rec, &[extent(0, 0)]).await {
                    Ok(_) | Err(CatalogueError::NoSuchBucket(_)) => {}
                    Err(e) => panic!("commit failed: {e:?}"),
                }
            }
        });
        let deleter = async {
            tokio::task::yield_now().await;
            cat.delete_bucket(&name, &bid(&name)).await.unwrap()
        };
        let (_, deleted) = tokio::join!(futures::future::join_all(writers), deleter);
        let left = cat.list_objects(&name, "", "", 100).await.unwrap().len();
        match deleted {
            DeleteBucket::Deleted { .. } => {
                assert!(cat.bucket(&name).await.unwrap().is_none());
                assert_eq!(left, 0, "round {round}: objects outlived their bucket");
            }
            DeleteBucket::NotEmpty => assert!(left > 0),
            DeleteBucket::Missing => panic!("round {round}: the bucket went missing"),
        }
    }
}

/// Concurrent writers of one key and creators of one bucket name (issue 10, hole 6): the last
/// writer wins and every other version is queued for collection; one creator wins the name.
async fn concurrent_writers_of_one_key_and_one_name(cat: &Catalogue) {
    make_bucket(cat, "same").await;
    let writers = (0..8u8).map(|i| {
        let cat = cat.clone();
        async move {
            let mut e = extent(0, 12);
            e.fragments
                .iter_mut()
                .for_each(|f| f.hash = FragmentHash::of(&[i, f.idx as u8, 7]));
            cat.commit_object(
                &bid("same"),
                &object("same", "k", &format!("same-v{i}")),
                &[e],
            )
            .await
            .unwrap()
        }
    });
    let outcomes = futures::future::join_all(writers).await;
    assert_eq!(
        outcomes.iter().filter(|r| **r == Replaced::Nothing).count(),
        1,
        "exactly one writer found the key empty"
    );
    let winner = cat.object("same", "k").await.unwrap().unwrap();
    assert_eq!(cat.extents(&winner.version_id).await.unwrap().len(), 1);
    let queued = cat.gc_batch(10_000).await.unwrap();
    let replaced = queued
        .iter()
        .filter(|q| {
            q.version_id
                .as_deref()
                .is_some_and(|v| v.starts_with("same-v"))
        })
        .count();
    assert_eq!(
        replaced,
        7 * 12,
        "every replaced version's fragments are queued"
    );

    let creators = (0..4).map(|i| {
        let cat = cat.clone();
        async move {
            cat.create_bucket(&Bucket {
                name: "contested".into(),
                id: format!("contested-{i}"),
                owner_id: format!("owner{i}"),
                profile: "cess".into(),
                created_ms: now_ms(),
                territory: None,
            })
            .await
            .unwrap()
        }
    });
    let created = futures::future::join_all(creators).await;
    assert_eq!(
        created
            .iter()
            .filter(|c| **c == CreateBucket::Created)
            .count(),
        1
    );
    let owner = cat.bucket("contested").await.unwrap().unwrap().owner_id;
    for c in created {
        if let CreateBucket::Exists { owner_id } = c {
            assert_eq!(owner_id, owner);
        }
    }
}

/// Key wraps are rows of their version: loaded with the object, shared by an upload and the
/// object it completes, and gone with the version.
async fn key_wraps_follow_their_version(cat: &Catalogue) {
    make_bucket(cat, "kw").await;
    let mut rec = object("kw", "k", "kw-v1");
    rec.wraps = vec![
        KeyWrapRecord {
            kind: "customer".into(),
            wrapped: vec![3; 65],
            commitment: Some(vec![4; 52]),
        },
        KeyWrapRecord {
            kind: "master".into(),
            wrapped: vec![5; 65],
            commitment: None,
        },
    ];
    cat.commit_object(&bid("kw"), &rec, &[extent(0, 0)])
        .await
        .unwrap();
    let got = cat.object("kw", "k").await.unwrap().unwrap();
    let mut kinds: Vec<&str> = got.wraps.iter().map(|w| w.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["customer", "master"]);
    assert!(got.wraps.contains(&rec.wraps[0]));
    cat.delete_object("kw", &bid("kw"), "k").await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_wraps WHERE version_id = $1")
        .bind("kw-v1")
        .fetch_one(cat.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "a deleted version's wraps go with it");

    let up = UploadRecord {
        upload_id: "kw-up".into(),
        bucket: "kw".into(),
        bucket_id: bid("kw"),
        key: "mp".into(),
        version_id: "kw-mv".into(),
        owner_id: "u1".into(),
        initiated_ms: now_ms(),
        meta: ObjectMeta::default(),
        storage_class: "STANDARD".into(),
        profile: "cess".into(),
        wraps: master_wrap(6),
    };
    cat.create_upload(&up).await.unwrap();
    assert_eq!(cat.upload("kw-up").await.unwrap().unwrap().wraps, up.wraps);
    cat.put_part(&up, &extent(1, 0)).await.unwrap();
    let mut done = object("kw", "mp", "kw-mv");
    done.wraps = up.wraps.clone();
    let chosen = [ChosenPart {
        part: 1,
        md5: extent(1, 0).md5,
    }];
    assert_eq!(
        cat.complete_upload(&up, &done, &chosen).await.unwrap(),
        Completed::Done
    );
    assert_eq!(
        cat.object("kw", "mp").await.unwrap().unwrap().wraps,
        up.wraps
    );
}

async fn suite(cat: &Catalogue) {
    users_and_keys(cat).await;
    buckets(cat).await;
    objects_replace_and_collect(cat).await;
    listing_order_and_prefix(cat).await;
    multipart_lifecycle(cat).await;
    settlement_outbox(cat).await;
    concurrent_writers(cat).await;
    writes_commit_only_into_their_bucket_incarnation(cat).await;
    delete_bucket_racing_commits_leaves_nothing_behind(cat).await;
    concurrent_writers_of_one_key_and_one_name(cat).await;
    key_wraps_follow_their_version(cat).await;
}

/// A catalogue written before key wraps were rows (migration 5) keeps every object readable:
/// the wraps in `objects` and `uploads` are copied into `key_wraps`.
#[tokio::test]
async fn wraps_kept_in_object_rows_are_moved_to_their_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let cat = Catalogue::open(&url).await.unwrap();
    // Back to the schema before migration 5, with rows as that release wrote them.
    for sql in [
        "DROP TABLE key_wraps",
        "DELETE FROM schema_version WHERE version = 5",
        "INSERT INTO objects (bucket, key, version_id, size, etag, last_modified_ms, meta, \
         storage_class, wrapped_key, sse_c_mac, checksum, parts_count) \
         VALUES ('b', 'plain', 'old-1', 1, 'e', 0, '{}', 'STANDARD', x'0909', NULL, NULL, 0), \
         ('b', 'sse', 'old-2', 1, 'e', 0, '{}', 'STANDARD', x'0808', x'0707', NULL, 0)",
        "INSERT INTO uploads (upload_id, bucket, bucket_id, key, version_id, owner_id, \
         initiated_ms, meta, storage_class, profile, wrapped_key, sse_c_mac) \
         VALUES ('old-up', 'b', 'id-b', 'mp', 'old-3', 'u1', 0, '{}', 'STANDARD', 'cess', x'0606', NULL)",
    ] {
        sqlx::query(sql).execute(cat.pool()).await.unwrap();
    }
    cat.close().await;
    let cat = Catalogue::open(&url).await.unwrap();
    let plain = cat.object("b", "plain").await.unwrap().unwrap();
    assert_eq!(
        plain.wraps,
        [KeyWrapRecord {
            kind: "master".into(),
            wrapped: vec![9, 9],
            commitment: None,
        }]
    );
    let sse = cat.object("b", "sse").await.unwrap().unwrap();
    assert_eq!(sse.wraps[0].kind, "customer");
    assert_eq!(sse.wraps[0].commitment.as_deref(), Some(&[7u8, 7][..]));
    let up = cat.upload("old-up").await.unwrap().unwrap();
    assert_eq!(up.wraps[0].wrapped, vec![6, 6]);
}

#[tokio::test]
async fn sqlite_suite() {
    let (_dir, cat) = sqlite_catalogue().await;
    suite(&cat).await;
}

#[tokio::test]
async fn postgres_suite() {
    if let Some(cat) = postgres_catalogue().await {
        assert_eq!(cat.backend(), Backend::Postgres);
        suite(&cat).await;
    }
}

#[tokio::test]
async fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let cat = Catalogue::open(&url).await.unwrap();
    cat.create_user("bob").await.unwrap();
    cat.close().await;
    let cat = Catalogue::open(&url).await.unwrap();
    assert!(cat.user_by_name("bob").await.unwrap().is_some());
}

/// A write whose request is dropped while it waits in the queue is abandoned, as its own
/// transaction would have been, and `barrier` returns only once nothing queued before it can
/// still land: cleanup after a dropped upload relies on that order.
#[tokio::test]
async fn writes_of_dropped_requests_are_abandoned_before_the_barrier_returns() {
    let (_dir, cat) = sqlite_catalogue().await;
    make_bucket(&cat, "b").await;
    // Holds the writer turn for a while, so the next writes queue behind it.
    let slow = {
        let cat = cat.clone();
        tokio::spawn(async move {
            cat.write_grouped::<()>(Box::new(|_| {
                Box::pin(async {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    Ok(())
                })
            }))
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let commit = |key: &'static str| {
        let cat = cat.clone();
        tokio::spawn(async move {
            cat.commit_object(&bid("b"), &object("b", key, key), &[extent(0, 0)])
                .await
        })
    };
    let dropped = commit("dropped");
    let kept = commit("kept");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    dropped.abort();
    cat.barrier().await.unwrap();
    assert!(cat.object("b", "dropped").await.unwrap().is_none());
    assert!(cat.object("b", "kept").await.unwrap().is_some());
    kept.await.unwrap().unwrap();
    slow.await.unwrap().unwrap();
}
