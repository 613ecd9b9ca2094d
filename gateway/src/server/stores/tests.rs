//! The start-up rules for store directories, on SQLite and on PostgreSQL.

use std::path::Path;

use bytes::Bytes;

use super::*;
use crate::catalogue::tests::{
    bid, extent, make_bucket, object, postgres_catalogue, sqlite_catalogue,
};
use crate::store::FragmentHash;

fn dirs(root: &Path, names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| root.join(n)).collect()
}

fn id_of(dir: &Path) -> Option<String> {
    identity::read(dir).unwrap().map(|i| i.id)
}

fn ids(set: &StoreSet) -> Vec<String> {
    set.all().map(|s| s.id().to_string()).collect()
}

/// Puts a fragment into the directory as a store of an earlier release would have.
async fn put_fragment(dir: &Path, bytes: &[u8]) -> FragmentHash {
    let hash = FragmentHash::of(bytes);
    LocalStore::open("any", dir)
        .unwrap()
        .put(hash, Bytes::copy_from_slice(bytes))
        .await
        .unwrap();
    hash
}

fn refusal(result: Result<StoreSet, StartError>) -> StoreDirError {
    match result {
        Err(StartError::StoreDir(e)) => e,
        other => panic!("expected a refused store directory, got {other:?}"),
    }
}

/// Checks the refusal names `dir` and writes nothing: no id file appears anywhere under `root`
/// and no store is registered.
async fn refused(cat: &Catalogue, root: &Path, list: &[PathBuf], dir: &Path) -> StoreDirError {
    let registered = cat.list_stores().await.unwrap();
    let files_before = id_files(root);
    let err = refusal(open_stores(cat, list).await);
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err} should name {}",
        dir.display()
    );
    assert_eq!(cat.list_stores().await.unwrap(), registered);
    assert_eq!(id_files(root), files_before);
    err
}

fn id_files(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path().join(ID_FILE))
        .filter(|p| p.exists())
        .collect();
    out.sort();
    out
}

async fn rules(cat: &Catalogue) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let d = dirs(root, &["d0", "d1", "d2", "d3"]);

    // A new catalogue does not take a directory full of fragments for a new store.
    let full = root.join("full");
    put_fragment(&full, b"someone's data").await;
    let list = [d[0].clone(), full.clone()];
    let err = refused(cat, root, &list, &full).await;
    assert!(matches!(err, StoreDirError::NoIdFile { .. }), "{err}");

    // Fresh directories get random ids, in their id files and in the catalogue.
    let set = open_stores(cat, &d).await.unwrap();
    let first = ids(&set);
    for (dir, id) in d.iter().zip(&first) {
        assert!(id.starts_with("st-"), "{id}");
        assert_eq!(id_of(dir).as_ref(), Some(id));
        let info = cat.store(id).await.unwrap().unwrap();
        assert_eq!(
            info.endpoint,
            dir.canonicalize().unwrap().display().to_string()
        );
        assert_eq!(info.state, crate::store::StoreState::Up);
    }
    assert_eq!(set.registry().all().count(), 4);

    // Reordered: every directory keeps its store.
    let reversed: Vec<PathBuf> = d.iter().rev().cloned().collect();
    let set = open_stores(cat, &reversed).await.unwrap();
    assert_eq!(ids(&set), first.iter().rev().cloned().collect::<Vec<_>>());

    // A store taken out of the middle stays registered, reported as not open.
    let without = [d[0].clone(), d[1].clone(), d[3].clone()];
    let set = open_stores(cat, &without).await.unwrap();
    assert_eq!(ids(&set), [first[0].as_str(), &first[1], &first[3]]);
    let missing: Vec<&str> = set.registry().not_open().map(|s| s.id.as_str()).collect();
    assert_eq!(missing, [first[2].as_str()]);

    // Another catalogue's store; checked before the fresh directory listed with it is named.
    let foreign = root.join("foreign");
    identity::write_new(&foreign, &StoreIdentity::fresh(StoreKind::Local, 1)).unwrap();
    let list = [d[0].clone(), root.join("new"), foreign.clone()];
    let err = refused(cat, root, &list, &foreign).await;
    assert!(matches!(err, StoreDirError::UnknownId { .. }), "{err}");

    // Fragments without an id file, once stores are registered.
    let list = [d[0].clone(), full.clone()];
    let err = refused(cat, root, &list, &full).await;
    assert!(matches!(err, StoreDirError::NoIdFile { .. }), "{err}");

    // The same directory twice, however it is spelled.
    let list = [d[1].clone(), d[0].clone(), d[1].join("..").join("d1")];
    let err = refused(cat, root, &list, &d[1]).await;
    assert!(matches!(err, StoreDirError::ListedTwice { .. }), "{err}");

    // A copied store: the same id twice.
    let copy = root.join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(d[2].join(ID_FILE), copy.join(ID_FILE)).unwrap();
    let list = [d[2].clone(), copy.clone()];
    let err = refused(cat, root, &list, &copy).await;
    assert!(matches!(err, StoreDirError::SameId { .. }), "{err}");

    // A directory that moved is opened under its id and its new endpoint recorded.
    let moved = root.join("moved");
    std::fs::rename(&d[3], &moved).unwrap();
    let set = open_stores(cat, std::slice::from_ref(&moved))
        .await
        .unwrap();
    assert_eq!(ids(&set), [first[3].as_str()]);
    assert_eq!(
        cat.store(&first[3]).await.unwrap().unwrap().endpoint,
        moved.canonicalize().unwrap().display().to_string()
    );
}

/// The one-time upgrade of a deployment whose fragments name positional ids.
async fn legacy_upgrade(cat: &Catalogue) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let d = dirs(root, &["d0", "d1", "d2", "d3"]);
    // An object of an earlier release: fragment i on store local-0i, in directory i.
    let mut e = extent(0, 3);
    for (i, f) in e.fragments.iter_mut().enumerate() {
        f.hash = put_fragment(&d[i], format!("fragment {i}").as_bytes()).await;
        f.store = legacy_id(i);
    }
    make_bucket(cat, "b").await;
    cat.commit_object(&bid("b"), &object("b", "k", "v1"), &[e])
        .await
        .unwrap();
    put_fragment(&d[1], b"an orphan of a crashed write").await;

    // Reordered in the same go as the upgrade: refused, since it cannot be undone afterwards.
    let swapped = [d[1].clone(), d[0].clone(), d[2].clone()];
    let err = refused(cat, root, &swapped, &d[1]).await;
    assert!(
        matches!(&err, StoreDirError::LegacyReordered { holder, .. } if holder == "local-01"),
        "{err}"
    );

    // A directory with an id of its own where a positional one is expected.
    let foreign = root.join("foreign");
    identity::write_new(&foreign, &StoreIdentity::fresh(StoreKind::Local, 1)).unwrap();
    let list = [d[0].clone(), foreign.clone()];
    let err = refused(cat, root, &list, &foreign).await;
    assert!(matches!(err, StoreDirError::LegacyMismatch { .. }), "{err}");

    // An adoption that stopped after writing one id file, before registering anything.
    identity::write_new(&d[1], &StoreIdentity::new("local-01", StoreKind::Local, 5)).unwrap();
    // Adopted by position, a new directory after them included.
    let set = open_stores(cat, &d).await.unwrap();
    assert_eq!(ids(&set), ["local-00", "local-01", "local-02", "local-03"]);
    for (i, dir) in d.iter().enumerate() {
        assert_eq!(id_of(dir), Some(legacy_id(i)));
    }
    assert_eq!(cat.list_stores().await.unwrap().len(), 4);

    // Exactly once: afterwards the order no longer matters...
    let reversed: Vec<PathBuf> = d.iter().rev().cloned().collect();
    let set = open_stores(cat, &reversed).await.unwrap();
    assert_eq!(ids(&set), ["local-03", "local-02", "local-01", "local-00"]);
    // ...and fragments without an id file are refused like anywhere else.
    let late = root.join("late");
    put_fragment(&late, b"fragment 0").await;
    let list = [d[0].clone(), late.clone()];
    let err = refused(cat, root, &list, &late).await;
    assert!(matches!(err, StoreDirError::NoIdFile { .. }), "{err}");
}

#[test]
fn positional_ids() {
    assert_eq!(legacy_position("local-00"), Some(0));
    assert_eq!(legacy_position("local-11"), Some(11));
    assert_eq!(legacy_position("local-123"), Some(123));
    for other in ["local-1", "local-007", "local-", "st-0011", "local-0x"] {
        assert_eq!(legacy_position(other), None, "{other}");
    }
}

#[tokio::test]
async fn rules_on_sqlite() {
    let (_dir, cat) = sqlite_catalogue().await;
    rules(&cat).await;
}

#[tokio::test]
async fn legacy_upgrade_on_sqlite() {
    let (_dir, cat) = sqlite_catalogue().await;
    legacy_upgrade(&cat).await;
}

#[tokio::test]
async fn rules_on_postgres() {
    if let Some(cat) = postgres_catalogue().await {
        rules(&cat).await;
    }
}

#[tokio::test]
async fn legacy_upgrade_on_postgres() {
    if let Some(cat) = postgres_catalogue().await {
        legacy_upgrade(&cat).await;
    }
}
