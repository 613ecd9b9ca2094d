//! Fragment stores keep their identity across restarts whatever the order of `stores.dirs`, and
//! a directory that cannot be told apart from another store stops the start instead of being
//! swept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sqlx::AssertSqlSafe;

use crate::harness::{Server, data};

const ID_FILE: &str = "deoss-store.json";

/// `count` store directories `disk0`, `disk1`, ... under `root` (not made yet).
fn disks(root: &Path, count: usize) -> Vec<PathBuf> {
    (0..count).map(|i| root.join(format!("disk{i}"))).collect()
}

/// A config with the 4+2 profile over `dirs`, in that order.
fn config(dirs: &[PathBuf]) -> String {
    let list: Vec<String> = dirs
        .iter()
        .map(|d| toml::Value::from(d.display().to_string()).to_string())
        .collect();
    format!(
        "[erasure]\ndefault_profile = \"4+2\"\n[stores]\ndirs = [{}]\n",
        list.join(", ")
    )
}

/// The fragment files in a store directory, relative to it.
fn fragments(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if sub.file_name() == ".tmp" || !sub.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            out.insert(f.path().strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}

fn all_fragments(dirs: &[PathBuf]) -> Vec<BTreeSet<PathBuf>> {
    dirs.iter().map(|d| fragments(d)).collect()
}

/// Asserts that no fragment file present in `before` (per directory) is gone.
fn none_deleted(dirs: &[PathBuf], before: &[BTreeSet<PathBuf>]) {
    for (dir, before) in dirs.iter().zip(before) {
        let now = fragments(dir);
        let gone: Vec<_> = before.difference(&now).collect();
        assert!(
            gone.is_empty(),
            "fragments deleted from {}: {gone:?}",
            dir.display()
        );
    }
}

fn id_of(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(ID_FILE)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["id"].as_str().unwrap().to_string()
}

/// Objects that put fragments on every store: two segments of 4+2, several one-segment
/// objects, and an inline one.
fn objects() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("big".to_string(), data(20 * 1024 * 1024 + 3, 1))];
    for i in 0..6 {
        out.push((format!("mid-{i}"), data(300_000 + i, 10 + i as u64)));
    }
    out.push(("tiny".to_string(), data(100, 99)));
    out
}

async fn put_all(server: &Server, objects: &[(String, Vec<u8>)]) {
    let s3 = server.client();
    s3.create_bucket().bucket("keep").send().await.unwrap();
    for (key, body) in objects {
        s3.put_object()
            .bucket("keep")
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
    }
}

async fn read_all_back(server: &Server, objects: &[(String, Vec<u8>)]) {
    let s3 = server.client();
    for (key, body) in objects {
        let got = s3
            .get_object()
            .bucket("keep")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(got.as_ref() == body.as_slice(), "{key} read back wrong");
    }
}

/// The ids `deoss admin store list` prints.
fn listed_ids(server: &Server) -> BTreeSet<String> {
    server
        .admin(&["store", "list"])
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn stores_keep_their_ids_when_reordered_or_removed() {
    let root = tempfile::tempdir().unwrap();
    let dirs = disks(root.path(), 8);
    let mut server = Server::start_with_config(&config(&dirs), &[]);
    let objects = objects();
    put_all(&server, &objects).await;
    let before = all_fragments(&dirs);
    assert!(
        before.iter().all(|f| !f.is_empty()),
        "every store holds fragments: {before:?}"
    );

    // Reversed: every store is found by its id file.
    let reversed: Vec<PathBuf> = dirs.iter().rev().cloned().collect();
    server.rewrite_config(&config(&reversed));
    server.restart();
    none_deleted(&dirs, &before);
    read_all_back(&server, &objects).await;

    // A store taken out of the middle: reads rebuild its fragments from parity; nothing of the
    // others, or of it, is swept.
    let mut remaining = dirs.clone();
    let removed = remaining.remove(3);
    server.rewrite_config(&config(&remaining));
    server.restart();
    none_deleted(&dirs, &before);
    read_all_back(&server, &objects).await;
    assert_eq!(fragments(&removed), before[3]);

    // Eight stores with ids of their own, the removed one still registered.
    let ids: BTreeSet<String> = dirs.iter().map(|d| id_of(d)).collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(listed_ids(&server), ids);
}

#[tokio::test]
async fn a_directory_of_another_catalogue_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let theirs = disks(&root.path().join("theirs"), 6);
    let server = Server::start_with_config(&config(&theirs), &[]);
    put_all(&server, &objects()).await;
    drop(server);
    let before = fragments(&theirs[2]);
    assert!(!before.is_empty());

    let mut ours = disks(&root.path().join("ours"), 6);
    ours[4] = theirs[2].clone();
    let stderr = Server::refused_with_config(&config(&ours));
    assert!(
        stderr.contains(&theirs[2].display().to_string()) && stderr.contains("another catalogue"),
        "{stderr}"
    );
    assert_eq!(fragments(&theirs[2]), before);
}

#[tokio::test]
async fn fragments_without_an_id_file_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dirs = disks(root.path(), 6);
    let mut server = Server::start_with_config(&config(&dirs), &[]);
    let objects = objects();
    put_all(&server, &objects).await;
    let before = all_fragments(&dirs);

    // The fragments of a store without its id file (a restored backup, say), in its place.
    let stray = root.path().join("stray");
    for f in &before[1] {
        std::fs::create_dir_all(stray.join(f).parent().unwrap()).unwrap();
        std::fs::copy(dirs[1].join(f), stray.join(f)).unwrap();
    }
    let mut list = dirs.clone();
    list[1] = stray.clone();
    server.rewrite_config(&config(&list));
    let stderr = server.restart_refused();
    assert!(
        stderr.contains(&stray.display().to_string()) && stderr.contains("no deoss-store.json"),
        "{stderr}"
    );
    assert_eq!(fragments(&stray), before[1]);
    none_deleted(&dirs, &before);

    // The store itself is welcome back.
    server.rewrite_config(&config(&dirs));
    server.restart();
    read_all_back(&server, &objects).await;
    none_deleted(&dirs, &before);
}

#[tokio::test]
async fn a_store_listed_twice_or_copied_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dirs = disks(root.path(), 6);
    let mut server = Server::start_with_config(&config(&dirs), &[]);
    put_all(&server, &objects()).await;
    let before = all_fragments(&dirs);

    let mut twice = dirs.clone();
    twice.push(dirs[0].clone());
    server.rewrite_config(&config(&twice));
    let stderr = server.restart_refused();
    assert!(
        stderr.contains(&dirs[0].display().to_string()) && stderr.contains("configured twice"),
        "{stderr}"
    );

    let copy = root.path().join("copy-of-disk5");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dirs[5])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let mut copied = dirs.clone();
    copied.push(copy.clone());
    server.rewrite_config(&config(&copied));
    let stderr = server.restart_refused();
    assert!(
        stderr.contains(&copy.display().to_string()) && stderr.contains("same store"),
        "{stderr}"
    );
    none_deleted(&dirs, &before);
    assert_eq!(fragments(&copy), before[5]);
}

/// A deployment of a release before store id files: its catalogue names stores by position
/// (`local-NN`) and its directories have no id file. The first start adopts each directory
/// under the id of its position, once; after that the order no longer matters.
#[tokio::test]
async fn an_earlier_release_is_adopted_once_by_position() {
    let root = tempfile::tempdir().unwrap();
    let dirs = disks(root.path(), 6);
    let mut server = Server::start_with_config(&config(&dirs), &[]);
    let objects = objects();
    put_all(&server, &objects).await;
    server.kill9();
    let before = all_fragments(&dirs);

    // Turn the deployment into what an earlier release left behind.
    sqlx::any::install_default_drivers();
    let db = server.data_dir().join("catalogue.db");
    let cat = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for (i, dir) in dirs.iter().enumerate() {
        let id = id_of(dir);
        for table in ["fragments", "gc_queue"] {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET store = $1 WHERE store = $2"
            )))
            .bind(format!("local-{i:02}"))
            .bind(&id)
            .execute(&cat)
            .await
            .unwrap();
        }
        std::fs::remove_file(dir.join(ID_FILE)).unwrap();
    }
    sqlx::query("DELETE FROM stores")
        .execute(&cat)
        .await
        .unwrap();
    cat.close().await;

    server.restart();
    read_all_back(&server, &objects).await;
    none_deleted(&dirs, &before);
    for (i, dir) in dirs.iter().enumerate() {
        assert_eq!(id_of(dir), format!("local-{i:02}"));
    }
    let expected: BTreeSet<String> = (0..6).map(|i| format!("local-{i:02}")).collect();
    assert_eq!(listed_ids(&server), expected);

    // Adopted once: reordering afterwards is harmless.
    let reversed: Vec<PathBuf> = dirs.iter().rev().cloned().collect();
    server.rewrite_config(&config(&reversed));
    server.restart();
    read_all_back(&server, &objects).await;
    none_deleted(&dirs, &before);
}
