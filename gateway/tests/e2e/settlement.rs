//! Settlement on the embedded dev ledger: storage orders declared and deleted through the
//! outbox, visible in headers and through `deoss chain`, and uploads refused with a cause.

use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{Server, code, data, message, raw_request};

/// `x-deoss-fid` and `x-deoss-settlement` of an object, read from a presigned HEAD.
pub async fn settlement_headers(
    server: &Server,
    bucket: &str,
    key: &str,
) -> (Option<String>, Option<String>) {
    settlement_headers_of(server, &server.client(), "HEAD", bucket, key).await
}

/// The same headers from a presigned `method` (`HEAD` or `GET`) signed by `s3`'s user.
pub async fn settlement_headers_of(
    server: &Server,
    s3: &aws_sdk_s3::Client,
    method: &str,
    bucket: &str,
    key: &str,
) -> (Option<String>, Option<String>) {
    let presigning = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let head = if method == "GET" {
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .presigned(presigning)
            .await
            .unwrap()
    } else {
        s3.head_object()
            .bucket(bucket)
            .key(key)
            .presigned(presigning)
            .await
            .unwrap()
    };
    let uri: http::Uri = head.uri().parse().unwrap();
    let headers: Vec<(String, String)> = head
        .headers()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = raw_request(
        server.addr,
        method,
        uri.path_and_query().unwrap().as_str(),
        &hdrs,
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{method} {bucket}/{key}");
    (
        resp.header("x-deoss-fid").map(str::to_string),
        resp.header("x-deoss-settlement").map(str::to_string),
    )
}

/// Polls the object's settlement header until it is no longer `pending` (bounded).
pub async fn wait_settled(server: &Server, bucket: &str, key: &str, within: Duration) -> String {
    wait_settled_as(server, &server.client(), bucket, key, within).await
}

/// [`wait_settled`] as `s3`'s user.
pub async fn wait_settled_as(
    server: &Server,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    within: Duration,
) -> String {
    let start = Instant::now();
    loop {
        let (_, state) = settlement_headers_of(server, s3, "HEAD", bucket, key).await;
        let state = state.expect("x-deoss-settlement header");
        if state != "pending" {
            return state;
        }
        assert!(
            start.elapsed() < within,
            "{bucket}/{key} still pending after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn block_of(state: &str) -> u64 {
    state
        .strip_prefix("declared; block=")
        .unwrap_or_else(|| panic!("not declared: {state}"))
        .parse()
        .unwrap()
}

fn chain(server: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deoss"))
        .arg("chain")
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deoss chain {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn order(server: &Server, fid: &str) -> serde_json::Value {
    serde_json::from_str(&chain(server, &["order", fid])).unwrap()
}

#[tokio::test]
async fn objects_are_declared_then_deleted_on_the_dev_ledger() {
    let server = Server::start();
    // The dev chain: a generated 0600 key and the ledger in <data_dir>/chain/.
    use std::os::unix::fs::PermissionsExt as _;
    let key = server.data_dir().join("chain/gateway.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(server.data_dir().join("chain/ledger.jsonl").exists());
    let s3 = server.client();
    s3.create_bucket().bucket("settle").send().await.unwrap();
    let body = data(300 * 1024, 1);
    s3.put_object()
        .bucket("settle")
        .key("photo.jpg")
        .body(body.clone().into())
        .send()
        .await
        .unwrap();
    let (fid, first) = settlement_headers(&server, "settle", "photo.jpg").await;
    let fid = fid.expect("x-deoss-fid");
    assert_eq!(fid.len(), 64);
    assert!(
        fid.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let first = first.unwrap();
    assert!(
        first == "pending" || first.starts_with("declared; block="),
        "{first}"
    );
    let state = wait_settled(&server, "settle", "photo.jpg", Duration::from_secs(20)).await;
    let block = block_of(&state);

    // The ledger has the order, at that block, with the object's name, size and owner.
    let o = order(&server, &fid);
    assert_eq!(o["fid"], fid.as_str());
    assert_eq!(o["declared_block"], block);
    assert_eq!(o["file_name"], "photo.jpg");
    assert_eq!(o["bucket_name"], "settle");
    assert_eq!(o["file_size"], body.len() as u64);
    assert_eq!(o["territory"], "deoss");
    assert!(o["deleted_block"].is_null());
    let blocks = chain(
        &server,
        &["blocks", "--from", &block.to_string(), "--limit", "1"],
    );
    assert!(blocks.contains(&fid), "{blocks}");

    // GET carries the same headers, and the CLI shows the same.
    let got = settlement_headers_of(&server, &s3, "GET", "settle", "photo.jpg").await;
    assert_eq!(got, (Some(fid.clone()), Some(state.clone())));
    let raw = server.admin(&["object", "settlement", "settle", "photo.jpg"]);
    assert!(raw.contains(&format!("fid = {fid}")), "{raw}");
    assert!(
        raw.contains(&format!("state = declared; block={block}")),
        "{raw}"
    );

    // An inline object has no order, and says why.
    s3.put_object()
        .bucket("settle")
        .key("small.txt")
        .body(b"tiny".to_vec().into())
        .send()
        .await
        .unwrap();
    let (small_fid, small) = settlement_headers(&server, "settle", "small.txt").await;
    assert_eq!(small_fid, None);
    // The header names the reason by its code; the admin CLI tells it in full.
    assert_eq!(small.as_deref(), Some("none; reason=inline"));
    let raw = server.admin(&["object", "settlement", "settle", "small.txt"]);
    assert!(
        raw.contains("state = none; reason=inline: the object is stored inline"),
        "{raw}"
    );

    // DELETE settles a deletion of the order.
    s3.delete_object()
        .bucket("settle")
        .key("photo.jpg")
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    let deleted = loop {
        let o = order(&server, &fid);
        if let Some(b) = o["deleted_block"].as_u64() {
            break b;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "deletion not settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(deleted > block);
    assert_eq!(order(&server, &fid)["state"], "Absent");
    let list = server.admin(&["settlement", "list"]);
    assert!(
        list.lines().any(|l| l.contains("\tdelete\t")
            && l.contains(&fid)
            && l.contains(&format!("deleted; block={deleted}"))),
        "{list}"
    );
}

#[tokio::test]
async fn multipart_objects_declare_the_segments_of_every_part() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let up = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("video.bin")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let parts = [data(5 * 1024 * 1024, 2), data(200 * 1024, 3)];
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("video.bin")
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
    s3.complete_multipart_upload()
        .bucket("mpu")
        .key("video.bin")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let state = wait_settled(&server, "mpu", "video.bin", Duration::from_secs(20)).await;
    let block = block_of(&state);
    let (fid, _) = settlement_headers(&server, "mpu", "video.bin").await;
    let fid = fid.unwrap();
    let o = order(&server, &fid);
    assert_eq!(o["segments"], 2, "one segment per part");
    assert_eq!(o["file_size"], (parts[0].len() + parts[1].len()) as u64);

    // The declaration in the block: its fid is the CESS tree over its segment hashes, and every
    // fragment it names is a fragment file the gateway stored.
    let line = chain(
        &server,
        &["blocks", "--from", &block.to_string(), "--limit", "1"],
    );
    let b: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(b["call"]["call"], "upload_declaration");
    let request = &b["call"]["request"];
    assert_eq!(request["fid"], fid.as_str());
    let segments = request["segments"].as_array().unwrap();
    let hashes: Vec<deoss_chain_client::Hash64> = segments
        .iter()
        .map(|s| deoss_chain_client::Hash64::from_hex(s["hash"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        deoss_chain_client::fid_of_segments(&hashes)
            .unwrap()
            .to_string(),
        fid
    );
    let files: Vec<String> = server
        .fragment_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for s in segments {
        let fragments = s["fragments"].as_array().unwrap();
        assert_eq!(fragments.len(), 12);
        for f in fragments {
            assert!(files.contains(&f.as_str().unwrap().to_string()), "{f}");
        }
    }
}

#[tokio::test]
async fn uploads_without_authorization_or_space_are_refused() {
    // A 1 GiB dev territory holds 10 segments' worth of orders (96 MiB each).
    let server = Server::start_with_config(
        "[chain]\ndev_territory_gib = 1\ncheck_cache_ms = 100\n",
        &[],
    );
    // A user with an explicit account that never authorized this gateway.
    let (ak, sk) = {
        let out = server.admin(&[
            "user",
            "create",
            "eve",
            "--account",
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        ]);
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim_start_matches(" = ").trim().to_string())
                .unwrap()
        };
        (field("access_key"), field("secret_key"))
    };
    let eve = server.client_for(&ak, &sk);
    eve.create_bucket().bucket("eve").send().await.unwrap();
    let err = eve
        .put_object()
        .bucket("eve")
        .key("x")
        .body(data(200 * 1024, 4).into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    let msg = message(&err);
    assert!(msg.contains("not authorized"), "{msg}");
    let err = eve
        .create_multipart_upload()
        .bucket("eve")
        .key("y")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    let err = eve
        .head_object()
        .bucket("eve")
        .key("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotFound");
    assert!(server.fragment_files().is_empty(), "nothing was stored");

    // The root user's dev territory fills up after 10 declared objects.
    let s3 = server.client();
    s3.create_bucket().bucket("full").send().await.unwrap();
    for i in 0..10 {
        let key = format!("obj-{i}");
        s3.put_object()
            .bucket("full")
            .key(&key)
            .body(data(200 * 1024, i).into())
            .send()
            .await
            .unwrap();
    }
    for i in 0..10 {
        let state = wait_settled(
            &server,
            "full",
            &format!("obj-{i}"),
            Duration::from_secs(30),
        )
        .await;
        block_of(&state);
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // past the check cache
    let before = server.fragment_files().len();
    let err = s3
        .put_object()
        .bucket("full")
        .key("one-too-many")
        .body(data(200 * 1024, 99).into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    let msg = message(&err);
    assert!(msg.contains("not enough space"), "{msg}");
    assert_eq!(server.fragment_files().len(), before, "nothing was stored");
    let err = s3
        .head_object()
        .bucket("full")
        .key("one-too-many")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotFound");
}

#[tokio::test]
async fn orders_settle_exactly_once_across_a_crash() {
    let mut server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("crash").send().await.unwrap();
    let keys: Vec<String> = (0..3).map(|i| format!("k{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        s3.put_object()
            .bucket("crash")
            .key(key)
            .body(data(200 * 1024, 50 + i as u64).into())
            .send()
            .await
            .unwrap();
    }
    // SIGKILL right after the uploads: some orders may be on the ledger, some only in the outbox.
    server.restart();
    let mut fids = Vec::new();
    for key in &keys {
        let state = wait_settled(&server, "crash", key, Duration::from_secs(20)).await;
        block_of(&state);
        fids.push(settlement_headers(&server, "crash", key).await.0.unwrap());
    }
    let blocks = chain(&server, &["blocks", "--limit", "100000"]);
    for fid in &fids {
        let declared = blocks
            .lines()
            .filter(|l| l.contains("\"call\":\"upload_declaration\"") && l.contains(fid.as_str()))
            .count();
        assert_eq!(declared, 1, "fid {fid} declared {declared} times");
    }
}

/// The first uploads of a fresh dev account usually arrive together (a client syncing a
/// directory): the account is provisioned once and every one of them is admitted.
#[tokio::test]
async fn concurrent_first_uploads_are_all_admitted() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("burst").send().await.unwrap();
    let puts = (0..24).map(|i| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("burst")
                .key(format!("f{i}"))
                .body(data(200 * 1024, i).into())
                .send()
                .await
        }
    });
    for (i, put) in futures::future::join_all(puts)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(put.is_ok(), "upload {i}: {:?}", put.err().map(|e| code(&e)));
    }
    let listed = s3.list_objects_v2().bucket("burst").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(24));
}

/// Each part is admitted for its own segment only; completing must check the whole storage
/// order, which declares every part's segments. Eleven 5 MiB parts need eleven segments, more
/// than a 1 GiB dev territory (ten) holds: the completion is refused and changes nothing.
#[tokio::test]
async fn completing_an_upload_larger_than_the_territory_is_refused() {
    let server = Server::start_with_config(
        "[chain]\ndev_territory_gib = 1\ncheck_cache_ms = 100\n",
        &[],
    );
    let s3 = server.client();
    s3.create_bucket().bucket("quota").send().await.unwrap();
    let up = s3
        .create_multipart_upload()
        .bucket("quota")
        .key("big")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for n in 1..=11 {
        let out = s3
            .upload_part()
            .bucket("quota")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .body(data(5 * 1024 * 1024, n as u64).into())
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
    let err = s3
        .complete_multipart_upload()
        .bucket("quota")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    let msg = message(&err);
    assert!(msg.contains("not enough space"), "{msg}");
    let err = s3
        .head_object()
        .bucket("quota")
        .key("big")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotFound");
    // The upload is still there to abort (or complete with fewer parts).
    let parts = s3
        .list_parts()
        .bucket("quota")
        .key("big")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 11);
    s3.abort_multipart_upload()
        .bucket("quota")
        .key("big")
        .upload_id(id)
        .send()
        .await
        .unwrap();
}

/// Admission reserves territory space: uploads racing for the last of a territory cannot all be
/// admitted. A 1 GiB dev territory takes ten one-segment orders (96 MiB each); sixteen uploads
/// sent at once, with the chain's answer cached all along, do not overrun it.
#[tokio::test]
async fn concurrent_uploads_cannot_overrun_a_territory() {
    let server = Server::start_with_config(
        "[chain]\ndev_territory_gib = 1\ncheck_cache_ms = 600000\n",
        &[],
    );
    let s3 = server.client();
    s3.create_bucket().bucket("race").send().await.unwrap();
    let puts = (0..16).map(|i| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("race")
                .key(format!("r{i}"))
                .body(data(200 * 1024, 100 + i).into())
                .send()
                .await
        }
    });
    let results = futures::future::join_all(puts).await;
    let mut admitted = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(_) => admitted.push(format!("r{i}")),
            Err(e) => {
                assert_eq!(code(e), "AccessDenied", "upload {i}");
                assert!(message(e).contains("not enough space"), "{}", message(e));
            }
        }
    }
    assert!(
        !admitted.is_empty() && admitted.len() <= 10,
        "{} of 16 admitted into room for 10",
        admitted.len()
    );
    // Every admitted object's order fits: none is refused on chain.
    for key in &admitted {
        let state = wait_settled(&server, "race", key, Duration::from_secs(30)).await;
        block_of(&state);
    }
    // With the territory full (or nearly), a later upload is refused up front when it would not
    // fit: the reservations of declared orders were given back, and the chain now counts them.
    let room = 10 - admitted.len();
    for i in 0..=room {
        let put = s3
            .put_object()
            .bucket("race")
            .key(format!("late{i}"))
            .body(data(200 * 1024, 200 + i as u64).into())
            .send()
            .await;
        if i < room {
            put.unwrap();
        } else {
            let err = put.unwrap_err();
            assert_eq!(code(&err), "AccessDenied");
            assert!(
                message(&err).contains("not enough space"),
                "{}",
                message(&err)
            );
        }
    }
}
