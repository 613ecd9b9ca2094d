//! Integration tests against the real CESS runtime (spec 100, from the testnet chain spec)
//! executed by Chopsticks.
//!
//! Needs `DEOSS_CHOPSTICKS_DIR` pointing at an install made by
//! `deploy/chain/install-chopsticks.sh`. Without it the tests print a skip message and pass,
//! unless `CI=true`, where they fail. Each test starts Chopsticks on a free loopback port,
//! produces blocks itself (Manual mode, with the RRSC slot set before each block, see
//! `shared/chain/README.md`) and kills Chopsticks at the end. The launcher is the crate's
//! `testkit` (also used by the gateway's tests).

use std::sync::Arc;
use std::time::Duration;

use deoss_chain_client::conformance::{self, Fixture};
use deoss_chain_client::testkit::{Chopsticks, chopsticks_dir, free_port};
use deoss_chain_client::{
    CessChain, CessOptions, Chain, Error, GatewayInfo, GatewayKey, OrderState,
};

fn options() -> CessOptions {
    CessOptions {
        wait_for_finality: true,
        tx_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cess_runtime_conformance() {
    let Some(install) = chopsticks_dir() else {
        return;
    };
    let node = Chopsticks::start_on(&install, free_port()).await;
    let gateway = GatewayKey::dev("Alice");
    let owner = GatewayKey::dev("Bob");
    let stranger = GatewayKey::dev("Charlie");
    node.prepare(&[gateway.account(), owner.account(), stranger.account()])
        .await;

    let chain = CessChain::connect(&node.url, gateway.clone(), options())
        .await
        .expect("connect");
    let shape = chain.shape().await;
    assert_eq!(shape.spec_version, 100);
    assert!(shape.has_buckets, "spec 100 has buckets");
    let chain: Arc<dyn Chain> = Arc::new(chain);

    // Register, then the owner authorizes the gateway and buys a territory.
    let info = GatewayInfo::for_account(&gateway.account(), "https://gw.deoss.test").unwrap();
    node.setup("register", || chain.register_gateway(&info))
        .await;
    let cess = CessChain::connect(&node.url, gateway.clone(), options())
        .await
        .expect("connect");
    assert!(!chain.is_authorized(&owner.account()).await.unwrap());
    let operator = gateway.account();
    let receipt = node
        .setup("authorize", || cess.authorize_as(&owner, &operator))
        .await;
    assert!(receipt.block_number >= 3);
    assert!(
        receipt.finalized,
        "Chopsticks reports finality: {receipt:?}"
    );
    node.setup("mint territory", || {
        cess.mint_territory_as(&owner, "home", 1, 30)
    })
    .await;
    // A second "home" minted for another account fails with StorageHandler::DuplicateTokens (the
    // token derives from the name and the runtime's randomness, which Chopsticks keeps fixed),
    // so the stranger gets no territory; the authorization check comes first anyway.

    let fx = Fixture {
        owner: owner.account(),
        territory: "home".into(),
        territory_gib: 1,
        stranger: stranger.account(),
        stores_immediately: false,
        seed: "cess".into(),
    };
    conformance::run_all(chain.as_ref(), &fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaration_without_territory_is_refused() {
    let Some(install) = chopsticks_dir() else {
        return;
    };
    let node = Chopsticks::start_on(&install, free_port()).await;
    let gateway = GatewayKey::dev("Alice");
    let owner = GatewayKey::dev("Dave");
    node.prepare(&[gateway.account(), owner.account()]).await;
    let chain = CessChain::connect(&node.url, gateway.clone(), options())
        .await
        .expect("connect");
    let info = GatewayInfo::for_account(&gateway.account(), "https://gw.deoss.test").unwrap();
    node.setup("register", || chain.register_gateway(&info))
        .await;
    let operator = gateway.account();
    node.setup("authorize", || chain.authorize_as(&owner, &operator))
        .await;
    assert!(chain.is_authorized(&owner.account()).await.unwrap());
    let request = conformance::sample_request(&owner.account(), "nowhere", 1, "no-territory");
    let pre = chain.check_upload(&owner.account(), "nowhere", 1).await;
    assert!(
        matches!(pre, Err(Error::TerritoryNotFound { .. })),
        "{pre:?}"
    );
    let err = chain.declare_upload(&request).await.expect_err("refused");
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(
        chain.order_state(&request.fid).await.unwrap(),
        OrderState::Absent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_node_comes_back() {
    let Some(install) = chopsticks_dir() else {
        return;
    };
    let port = free_port();
    let node = Chopsticks::start_on(&install, port).await;
    let gateway = GatewayKey::dev("Alice");
    let chain = CessChain::connect(
        &node.url,
        gateway.clone(),
        CessOptions {
            request_timeout: Duration::from_secs(10),
            ..options()
        },
    )
    .await
    .expect("connect");
    assert!(chain.best_block().await.expect("best block") >= 2);

    // The node goes away: every call fails fast and says a retry is allowed.
    drop(node);
    let err = chain.best_block().await.expect_err("node is down");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    let err = chain
        .is_authorized(&GatewayKey::dev("Bob").account())
        .await
        .expect_err("node is down");
    assert!(err.is_retryable(), "{err:?}");

    // It comes back on the same address: the same CessChain reconnects, reads and writes.
    let node = Chopsticks::start_on(&install, port).await;
    node.prepare(&[gateway.account()]).await;
    assert!(chain.best_block().await.expect("reconnected") >= 2);
    let info = GatewayInfo::for_account(&gateway.account(), "https://gw.deoss.test").unwrap();
    let registered = match chain.register_gateway(&info).await {
        // A block that Chopsticks failed to build drops the transaction; that is not what this
        // test is about, so send it once more.
        Err(e @ Error::NotIncluded { .. }) if e.is_retryable() => {
            eprintln!("register: {e}; sending again");
            chain.register_gateway(&info).await
        }
        other => other,
    };
    assert!(registered.is_ok(), "{registered:?}\n{}", node.log_tail());
    assert_eq!(
        chain.gateway_info(&gateway.account()).await.unwrap(),
        Some(info)
    );
}
