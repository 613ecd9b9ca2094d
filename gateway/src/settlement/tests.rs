use std::sync::Arc;

use deoss_chain_client::{DevLedger, GatewayKey, LedgerCall, OrderState};

use super::*;
use crate::catalogue::tests::{bid, extent, make_bucket, object, sqlite_catalogue};
use crate::catalogue::{Bucket, SettlementKind};

#[test]
fn file_names_fit_cess_limits_deterministically() {
    assert_eq!(file_name_for("photo.jpg"), "photo.jpg");
    assert_eq!(file_name_for("a"), "a__");
    let long = format!("{}é-tail", "dir/".repeat(20));
    let name = file_name_for(&long);
    assert!(name.len() <= MAX_NAME_LEN, "{name}");
    assert_eq!(name, file_name_for(&long));
    assert_ne!(name, file_name_for(&format!("{long}2")));
    assert!(name.starts_with("dir/dir/"));
    // A multi-byte character at the cut is not split.
    let wide = "é".repeat(40);
    assert!(file_name_for(&wide).len() <= MAX_NAME_LEN);
}

#[test]
fn dev_accounts_are_per_user_and_stable() {
    assert_eq!(dev_account("root"), dev_account("root"));
    assert_ne!(dev_account("root"), dev_account("alice"));
}

#[test]
fn retry_delays_grow_to_the_cap() {
    let r = RetryConfig {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(10),
        multiplier: 2,
    };
    let d: Vec<u64> = (1..=6).map(|a| r.delay(a).as_secs()).collect();
    assert_eq!(d, [1, 2, 4, 8, 10, 10]);
    assert_eq!(r.delay(u32::MAX), Duration::from_secs(10));
}

#[test]
fn header_values() {
    assert_eq!(
        header_value(SettlementState::Pending, None, None),
        "pending"
    );
    assert_eq!(
        header_value(SettlementState::Declared, Some(12), None),
        "declared; block=12"
    );
    assert_eq!(
        header_value(
            SettlementState::None,
            None,
            Some("inline: the object is\nstored inline")
        ),
        "none; reason=inline"
    );
    // The header carries the code only, never the chain's words; the admin CLI shows them.
    let chain_text = "ledger_io: dev ledger I/O on /var/lib/deoss/chain/ledger.jsonl: disk full";
    assert_eq!(
        header_value(SettlementState::Failed, None, Some(chain_text)),
        "failed; reason=ledger_io"
    );
    assert_eq!(
        describe(SettlementState::Failed, None, Some(chain_text)),
        format!("failed; reason={chain_text}")
    );
    // Reasons stored before codes were: a code for the state, not their text.
    assert_eq!(
        header_value(
            SettlementState::Failed,
            None,
            Some("chain node ws://10.0.0.1:9944 is unavailable")
        ),
        "failed; reason=chain_error"
    );
    assert_eq!(
        header_value(SettlementState::None, None, Some("stored inline")),
        "none; reason=not_declarable"
    );
}

async fn fixture() -> (
    tempfile::TempDir,
    tempfile::TempDir,
    Arc<Settlement>,
    DevLedger,
) {
    let (cdir, cat) = sqlite_catalogue().await;
    make_bucket(&cat, "b").await;
    let ldir = tempfile::tempdir().unwrap();
    let ledger = DevLedger::open(ldir.path(), GatewayKey::dev("Alice")).unwrap();
    let chain: Arc<dyn Chain> = Arc::new(ledger.clone());
    let info =
        deoss_chain_client::GatewayInfo::for_account(&chain.gateway_account(), "test").unwrap();
    chain.register_gateway(&info).await.unwrap();
    let s = Arc::new(Settlement::new(chain, cat, SettlementConfig::default()));
    (cdir, ldir, s, ledger)
}

fn bucket(owner: &str) -> Bucket {
    Bucket {
        name: "b".into(),
        id: bid("b"),
        owner_id: owner.into(),
        profile: "cess".into(),
        created_ms: 0,
        territory: None,
    }
}

fn declarations(ledger: &DevLedger) -> usize {
    ledger
        .blocks(0, 10_000)
        .unwrap()
        .iter()
        .filter(|b| matches!(b.call, LedgerCall::UploadDeclaration { .. }))
        .count()
}

#[tokio::test]
async fn dev_users_are_provisioned_and_orders_settle_exactly_once() {
    let (_c, _l, s, ledger) = fixture().await;
    let cat = s.catalogue().clone();
    let user = cat.create_user("bob").await.unwrap().unwrap();
    let payer = s.admit(&user.id, &bucket(&user.id), 1000).await.unwrap();
    assert!(payer.implicit);
    assert_eq!(payer.account, dev_account("bob"));
    assert_eq!(payer.territory, "deoss");

    let ext = [extent(0, 24)];
    let plan = s.plan(&payer, "b", "k", 1000, &ext);
    assert_eq!(plan.state, SettlementState::Pending);
    let request: DeclarationRequest =
        serde_json::from_str(plan.request.as_deref().unwrap()).unwrap();
    assert_eq!(request.segments.len(), 2);
    request.validate().unwrap();
    cat.commit_object_settled(&bid("b"), &object("b", "k", "v1"), &ext, Some(&plan))
        .await
        .unwrap();

    let gw = s.chain().gateway_account().to_string();
    assert!(s.settle_next(&gw).await.unwrap());
    let row = cat.settlement_of_version("v1").await.unwrap().unwrap();
    assert_eq!(row.state, SettlementState::Declared);
    let fid = request.fid;
    let order = ledger.order(&fid).unwrap();
    assert_eq!(row.block, Some(order.declared_block as i64));

    // A crash after the block but before the row was updated: the retry finds the order on
    // chain and sends nothing.
    cat.settlement_update(row.id, SettlementState::Pending, None, None, 1, 0)
        .await
        .unwrap();
    assert!(s.settle_next(&gw).await.unwrap());
    assert_eq!(declarations(&ledger), 1);
    let again = cat.settlement_of_version("v1").await.unwrap().unwrap();
    assert_eq!(again.state, SettlementState::Declared);
    assert_eq!(again.block, row.block);

    // Deleting the object deletes the order.
    cat.delete_object("b", &bid("b"), "k").await.unwrap();
    assert!(s.settle_next(&gw).await.unwrap());
    let rows = cat.settlement_of_fid(fid.as_str()).await.unwrap();
    assert_eq!(rows[1].kind, SettlementKind::Delete);
    assert_eq!(rows[1].state, SettlementState::Deleted);
    assert!(ledger.order(&fid).unwrap().deleted_block.is_some());
    assert_eq!(
        s.chain().order_state(&fid).await.unwrap(),
        OrderState::Absent
    );
    assert!(!s.settle_next(&gw).await.unwrap());
}

#[tokio::test]
async fn refusals_name_the_cause() {
    let (_c, _l, s, ledger) = fixture().await;
    let cat = s.catalogue().clone();
    let owner = GatewayKey::dev("Bob").account();
    let user = cat
        .create_user_with("carol", Some(&owner.to_string()), Some("t1"))
        .await
        .unwrap()
        .unwrap();
    let b = bucket(&user.id);
    let err = s.admit(&user.id, &b, 1).await.unwrap_err().to_string();
    assert!(err.contains("not authorized"), "{err}");
    ledger
        .authorize(&owner, &s.chain().gateway_account())
        .await
        .unwrap();
    // The refusal above is cached for a few seconds; a new settlement starts with no cache.
    let s = Settlement::new(s.chain().clone(), cat.clone(), SettlementConfig::default());
    let err = s.admit(&user.id, &b, 1).await.unwrap_err().to_string();
    assert!(err.contains("no territory"), "{err}");
    ledger.mint_territory(&owner, "t1", 1, 1).await.unwrap();
    let s = Settlement::new(s.chain().clone(), cat.clone(), SettlementConfig::default());
    s.admit(&user.id, &b, 1).await.unwrap();
    let err = s
        .admit(&user.id, &b, 1 << 40)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not enough space"), "{err}");
    ledger
        .advance_blocks(2 * deoss_chain_client::BLOCKS_PER_DAY)
        .await
        .unwrap();
    let s = Settlement::new(s.chain().clone(), cat.clone(), SettlementConfig::default());
    let err = s.admit(&user.id, &b, 1).await.unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");
}

#[tokio::test]
async fn undeclarable_objects_say_why() {
    let (_c, _l, s, _ledger) = fixture().await;
    let payer = Payer {
        account: dev_account("x"),
        territory: "deoss".into(),
        implicit: true,
        reservation: Reservation::default(),
    };
    let inline = s.plan(&payer, "b", "k", 3, &[extent(0, 0)]);
    assert_eq!(inline.state, SettlementState::None);
    assert!(inline.reason.unwrap().contains("inline"));
    let mut e = extent(0, 12);
    e.k = 4;
    e.m = 2;
    let other = s.plan(&payer, "b", "k", 3, &[e]);
    assert!(other.reason.unwrap().contains("4+2"));
}

/// The dev ledger behind a switch that makes it unreachable, counting declarations sent.
#[derive(Debug)]
struct Flaky {
    inner: DevLedger,
    down: std::sync::atomic::AtomicBool,
    declared: std::sync::atomic::AtomicUsize,
    /// The answer to the next declaration, instead of the ledger's.
    refusal: std::sync::Mutex<Option<deoss_chain_client::Error>>,
}

impl Flaky {
    fn check(&self) -> deoss_chain_client::Result<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(deoss_chain_client::Error::Unavailable {
                endpoint: "ws://test".into(),
                source: "node down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Chain for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    fn gateway_account(&self) -> AccountId {
        self.inner.gateway_account()
    }
    fn dev_ledger(&self) -> Option<&DevLedger> {
        Some(&self.inner)
    }
    async fn best_block(&self) -> deoss_chain_client::Result<u64> {
        self.check()?;
        self.inner.best_block().await
    }
    async fn register_gateway(
        &self,
        info: &deoss_chain_client::GatewayInfo,
    ) -> deoss_chain_client::Result<deoss_chain_client::Registration> {
        self.check()?;
        self.inner.register_gateway(info).await
    }
    async fn gateway_info(
        &self,
        account: &AccountId,
    ) -> deoss_chain_client::Result<Option<deoss_chain_client::GatewayInfo>> {
        self.check()?;
        self.inner.gateway_info(account).await
    }
    async fn is_authorized(&self, owner: &AccountId) -> deoss_chain_client::Result<bool> {
        self.check()?;
        self.inner.is_authorized(owner).await
    }
    async fn territory(
        &self,
        owner: &AccountId,
        name: &str,
    ) -> deoss_chain_client::Result<Option<Territory>> {
        self.check()?;
        self.inner.territory(owner, name).await
    }
    async fn declare_upload(
        &self,
        request: &DeclarationRequest,
    ) -> deoss_chain_client::Result<deoss_chain_client::TxReceipt> {
        self.check()?;
        if let Some(e) = self.refusal.lock().unwrap().take() {
            return Err(e);
        }
        self.declared
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.declare_upload(request).await
    }
    async fn delete_file(
        &self,
        owner: &AccountId,
        fid: &Fid,
    ) -> deoss_chain_client::Result<deoss_chain_client::TxReceipt> {
        self.check()?;
        self.inner.delete_file(owner, fid).await
    }
    async fn order_state(&self, fid: &Fid) -> deoss_chain_client::Result<OrderState> {
        self.check()?;
        self.inner.order_state(fid).await
    }
}

#[tokio::test]
async fn a_down_chain_keeps_orders_pending_and_uploads_use_the_last_answer() {
    use std::sync::atomic::Ordering::SeqCst;
    let (_c, cat) = sqlite_catalogue().await;
    make_bucket(&cat, "b").await;
    let ldir = tempfile::tempdir().unwrap();
    let ledger = DevLedger::open(ldir.path(), GatewayKey::dev("Alice")).unwrap();
    let flaky = Arc::new(Flaky {
        inner: ledger,
        down: Default::default(),
        declared: Default::default(),
        refusal: Default::default(),
    });
    let chain: Arc<dyn Chain> = flaky.clone();
    let info = deoss_chain_client::GatewayInfo::for_account(&chain.gateway_account(), "t").unwrap();
    chain.register_gateway(&info).await.unwrap();
    let cfg = SettlementConfig {
        check_cache: Duration::ZERO,
        ..SettlementConfig::default()
    };
    let s = Settlement::new(chain.clone(), cat.clone(), cfg.clone());
    let user = cat.create_user("bob").await.unwrap().unwrap();
    let b = bucket(&user.id);
    let payer = s.admit(&user.id, &b, 1).await.unwrap();
    let ext = [extent(0, 12)];
    let plan = s.plan(&payer, "b", "k", 1, &ext);
    cat.commit_object_settled(&bid("b"), &object("b", "k", "v1"), &ext, Some(&plan))
        .await
        .unwrap();
    s.hold_until_declared(&payer, Settlement::pending_fid(&plan));
    drop(payer);

    flaky.down.store(true, SeqCst);
    // Uploads: the last answer is reused while the chain is down; with none, 503.
    s.admit(&user.id, &b, 1).await.unwrap();
    let fresh = Settlement::new(chain.clone(), cat.clone(), cfg);
    assert!(matches!(
        fresh.admit(&user.id, &b, 1).await,
        Err(AdmitError::Unavailable(_))
    ));
    // The order stays pending and backs off.
    let gw = chain.gateway_account().to_string();
    assert!(s.settle_next(&gw).await.unwrap());
    let row = cat.settlement_of_version("v1").await.unwrap().unwrap();
    assert_eq!(row.state, SettlementState::Pending);
    assert_eq!(row.attempts, 1);
    assert!(row.next_attempt_ms > crate::catalogue::now_ms());
    assert!(!s.settle_next(&gw).await.unwrap(), "not due yet");

    // Back up: it settles, with one declaration sent.
    flaky.down.store(false, SeqCst);
    cat.settlement_update(row.id, SettlementState::Pending, None, None, 1, 0)
        .await
        .unwrap();
    assert!(s.settle_next(&gw).await.unwrap());
    let row = cat.settlement_of_version("v1").await.unwrap().unwrap();
    assert_eq!(row.state, SettlementState::Declared);
    assert_eq!(flaky.declared.load(SeqCst), 1);
    // A crash between the block and the row update: the retry reads the order's state and sends
    // nothing.
    cat.settlement_update(row.id, SettlementState::Pending, None, None, 2, 0)
        .await
        .unwrap();
    assert!(s.settle_next(&gw).await.unwrap());
    assert_eq!(
        cat.settlement_of_version("v1")
            .await
            .unwrap()
            .unwrap()
            .state,
        SettlementState::Declared
    );
    assert_eq!(flaky.declared.load(SeqCst), 1, "declared exactly once");

    // The declaration settled, so the cached answer is no longer current; it is still the
    // fallback when the chain goes down again.
    flaky.down.store(true, SeqCst);
    s.admit(&user.id, &b, 1)
        .await
        .expect("the last answer admits while the chain is down");
}

/// A declaration the chain refuses fails with a reason code in the header; the chain's own words
/// (here with a node address and a file path) are kept for the admin CLI only. Its territory
/// space is given back.
#[tokio::test]
async fn refused_declarations_show_a_code_not_the_chain_text() {
    let (_c, cat) = sqlite_catalogue().await;
    make_bucket(&cat, "b").await;
    let ldir = tempfile::tempdir().unwrap();
    let ledger = DevLedger::open(ldir.path(), GatewayKey::dev("Alice")).unwrap();
    let flaky = Arc::new(Flaky {
        inner: ledger,
        down: Default::default(),
        declared: Default::default(),
        refusal: Default::default(),
    });
    let chain: Arc<dyn Chain> = flaky.clone();
    let info = deoss_chain_client::GatewayInfo::for_account(&chain.gateway_account(), "t").unwrap();
    chain.register_gateway(&info).await.unwrap();
    let s = Settlement::new(chain.clone(), cat.clone(), SettlementConfig::default());
    let user = cat.create_user("bob").await.unwrap().unwrap();
    let b = bucket(&user.id);
    let payer = s.admit(&user.id, &b, 1).await.unwrap();
    let key = (payer.account, payer.territory.clone());
    let ext = [extent(0, 12)];
    let plan = s.plan(&payer, "b", "k", 1, &ext);
    cat.commit_object_settled(&bid("b"), &object("b", "k", "v1"), &ext, Some(&plan))
        .await
        .unwrap();
    s.hold_until_declared(&payer, Settlement::pending_fid(&plan));
    drop(payer);
    assert!(s.reservations.held(&key) > 0, "held until declared");

    *flaky.refusal.lock().unwrap() = Some(deoss_chain_client::Error::Dispatch {
        call: "FileBank.upload_declaration".into(),
        error: "node ws://10.0.0.5:9944: cannot open /var/lib/cess/db".into(),
    });
    let gw = chain.gateway_account().to_string();
    assert!(s.settle_next(&gw).await.unwrap());
    let row = cat.settlement_of_version("v1").await.unwrap().unwrap();
    assert_eq!(row.state, SettlementState::Failed);
    let reason = row.reason.as_deref();
    assert_eq!(
        header_value(row.state, row.block, reason),
        "failed; reason=dispatch"
    );
    let full = describe(row.state, row.block, reason);
    assert!(full.contains("/var/lib/cess/db"), "{full}");
    assert_eq!(s.reservations.held(&key), 0, "given back");
}
