//! A gateway on `--chain cess` against the real CESS runtime executed by Chopsticks
//! (`deoss_chain_client::testkit`). Skipped with a message when `DEOSS_CHOPSTICKS_DIR` is unset;
//! fails when it is unset and `CI=true`.

use std::time::{Duration, Instant};

use deoss_chain_client::testkit::{Chopsticks, chopsticks_dir, free_port};
use deoss_chain_client::{CessChain, CessOptions, Chain, GatewayKey, Hash64, OrderState};

use crate::harness::{Server, code, data};
use crate::settlement::{settlement_headers_of, wait_settled_as};

fn options() -> CessOptions {
    CessOptions {
        wait_for_finality: true,
        tx_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_secs(30),
    }
}

fn user(server: &Server, name: &str, account: &str, territory: &str) -> (String, String) {
    let out = server.admin(&[
        "user",
        "create",
        name,
        "--account",
        account,
        "--territory",
        territory,
    ]);
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim_start_matches(" = ").trim().to_string())
            .unwrap()
    };
    (field("access_key"), field("secret_key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cess_orders_wait_in_the_outbox_while_the_node_is_down() {
    let Some(install) = chopsticks_dir() else {
        return;
    };
    let node = Chopsticks::start_on(&install, free_port()).await;
    let gateway = GatewayKey::dev("Alice");
    let owner = GatewayKey::dev("Bob");
    node.prepare(&[gateway.account(), owner.account()]).await;
    // The owner authorizes the gateway's account and buys a territory.
    let cess = CessChain::connect(&node.url, owner.clone(), options())
        .await
        .expect("connect");
    let operator = gateway.account();
    node.setup("authorize", || cess.authorize_as(&owner, &operator))
        .await;
    node.setup("mint territory", || {
        cess.mint_territory_as(&owner, "home", 1, 30)
    })
    .await;

    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("gateway.key");
    std::fs::write(&key_file, "//Alice\n").unwrap();
    let config = format!(
        "[chain]\nbackend = \"cess\"\nurl = \"{}\"\nkey_file = \"{}\"\ncheck_cache_ms = 500\n\
         retry_initial_ms = 300\nretry_max_ms = 2000\nrequest_timeout_secs = 3\ntx_timeout_secs = 30\n",
        node.url,
        key_file.display()
    );
    let server = Server::start_with_config(&config, &[]);
    // The gateway registered itself at start.
    assert!(
        cess.gateway_info(&gateway.account())
            .await
            .unwrap()
            .is_some(),
        "Oss.register"
    );

    // Root has no chain account: no uploads on CESS.
    let root = server.client();
    root.create_bucket().bucket("root").send().await.unwrap();
    let err = root
        .put_object()
        .bucket("root")
        .key("x")
        .body(data(1000, 1).into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");

    let (ak, sk) = user(&server, "bob", &owner.account().to_string(), "home");
    let bob = server.client_for(&ak, &sk);
    bob.create_bucket().bucket("bob").send().await.unwrap();
    bob.put_object()
        .bucket("bob")
        .key("first.bin")
        .body(data(300 * 1024, 2).into())
        .send()
        .await
        .unwrap();
    let state = wait_settled_as(&server, &bob, "bob", "first.bin", Duration::from_secs(120)).await;
    assert!(state.starts_with("declared; block="), "{state}");
    let (fid, _) = settlement_headers_of(&server, &bob, "HEAD", "bob", "first.bin").await;
    let first = Hash64::from_hex(&fid.unwrap()).unwrap();
    assert_eq!(
        cess.order_state(&first).await.unwrap(),
        OrderState::Declared,
        "DealMap"
    );

    // The node stops answering. Uploads are still admitted (the last check is reused) and their
    // orders wait in the outbox.
    node.pause();
    tokio::time::sleep(Duration::from_millis(600)).await; // past the check cache
    let keys_down = ["down-1.bin", "down-2.bin"];
    for (i, key) in keys_down.iter().enumerate() {
        bob.put_object()
            .bucket("bob")
            .key(*key)
            .body(data(300 * 1024, 10 + i as u64).into())
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut fids = Vec::new();
    for key in keys_down {
        let (fid, state) = settlement_headers_of(&server, &bob, "HEAD", "bob", key).await;
        assert_eq!(
            state.as_deref(),
            Some("pending"),
            "{key} while the node is down"
        );
        fids.push(Hash64::from_hex(&fid.unwrap()).unwrap());
    }
    let outbox = server.admin(&["settlement", "list"]);
    assert!(outbox.contains("pending"), "{outbox}");

    // It comes back: each order settles, once.
    node.resume();
    let start = Instant::now();
    for key in keys_down {
        let state = wait_settled_as(&server, &bob, "bob", key, Duration::from_secs(180)).await;
        assert!(
            state.starts_with("declared; block="),
            "{key}: {state} after {:?}",
            start.elapsed()
        );
    }
    for fid in &fids {
        assert_eq!(
            cess.order_state(fid).await.unwrap(),
            OrderState::Declared,
            "DealMap of {fid}"
        );
    }
    let outbox = server.admin(&["settlement", "list", "--limit", "100"]);
    for fid in fids.iter().chain([&first]) {
        let rows: Vec<&str> = outbox
            .lines()
            .filter(|l| l.contains(fid.as_str()))
            .collect();
        assert_eq!(rows.len(), 1, "one outbox row per order: {outbox}");
        assert!(rows[0].contains("declared; block="), "{outbox}");
    }
}
