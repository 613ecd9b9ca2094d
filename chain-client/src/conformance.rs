//! The conformance suite every [`Chain`] backend runs: plain `async fn`s over `&dyn Chain`.
//!
//! A backend's test prepares a [`Fixture`] (an owner who authorized the gateway and holds a
//! territory, an owner who did not) with the backend's own helpers, then calls [`run_all`] or the
//! single checks. The checks panic with a message on failure, like `assert!`.

use crate::chain::Chain;
use crate::error::Error;
use crate::hash::{Hash64, fid_of_segments};
use crate::types::{
    AccountId, DeclarationRequest, FRAGMENTS_PER_SEGMENT, GatewayInfo, OrderState, Registration,
    SEGMENT_SIZE, SPACE_PER_SEGMENT, SegmentDeclaration,
};

/// What the suite needs prepared on the backend.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// An owner who authorized the gateway and has `territory`.
    pub owner: AccountId,
    /// Name of `owner`'s active territory.
    pub territory: String,
    /// Its size in GiB (the suite declares enough segments to overflow it).
    pub territory_gib: u32,
    /// An owner who did not authorize the gateway (with or without a territory).
    pub stranger: AccountId,
    /// Whether a declaration becomes `Stored` at once (dev ledger with auto-store) or stays
    /// `Declared` (CESS without storage miners).
    pub stores_immediately: bool,
    /// Makes fids unique per run.
    pub seed: String,
}

/// A well-formed declaration with `segments` segments of made-up content derived from `seed`.
pub fn sample_request(
    owner: &AccountId,
    territory: &str,
    segments: usize,
    seed: &str,
) -> DeclarationRequest {
    let segments: Vec<SegmentDeclaration> = (0..segments)
        .map(|i| SegmentDeclaration {
            hash: Hash64::of_bytes(format!("{seed}/segment/{i}").as_bytes()),
            fragments: (0..FRAGMENTS_PER_SEGMENT)
                .map(|j| Hash64::of_bytes(format!("{seed}/segment/{i}/fragment/{j}").as_bytes()))
                .collect(),
        })
        .collect();
    let hashes: Vec<Hash64> = segments.iter().map(|s| s.hash).collect();
    let fid = fid_of_segments(&hashes).unwrap_or_else(|_| Hash64::of_bytes(seed.as_bytes()));
    DeclarationRequest {
        fid,
        segments,
        owner: *owner,
        file_name: format!("{}.bin", seed.chars().take(40).collect::<String>()),
        bucket_name: "deoss-conformance".to_string(),
        territory: territory.to_string(),
        file_size: SEGMENT_SIZE * hashes.len() as u64 - 123,
    }
}

/// Registering twice with the same details sends nothing the second time; other details update.
pub async fn register_is_idempotent(chain: &dyn Chain, fx: &Fixture) {
    let me = chain.gateway_account();
    let first = GatewayInfo::for_account(&me, format!("https://{}.gw.test", fx.seed.len()))
        .expect("domain fits");
    chain.register_gateway(&first).await.expect("register");
    assert_eq!(
        chain
            .register_gateway(&first)
            .await
            .expect("register again"),
        Registration::Unchanged
    );
    assert_eq!(
        chain.gateway_info(&me).await.expect("read"),
        Some(first.clone())
    );
    let second = GatewayInfo::for_account(&me, "https://moved.gw.test").expect("domain fits");
    assert!(matches!(
        chain.register_gateway(&second).await.expect("update"),
        Registration::Updated(_)
    ));
    assert_eq!(chain.gateway_info(&me).await.expect("read"), Some(second));
}

/// The authorization list is visible, and only for the owner who granted it.
pub async fn authorization_is_visible(chain: &dyn Chain, fx: &Fixture) {
    assert!(chain.is_authorized(&fx.owner).await.expect("read"));
    assert!(!chain.is_authorized(&fx.stranger).await.expect("read"));
}

/// The territory reads back with its size, an active state and a future deadline.
pub async fn territory_is_readable(chain: &dyn Chain, fx: &Fixture) {
    let t = chain
        .territory(&fx.owner, &fx.territory)
        .await
        .expect("read")
        .expect("territory exists");
    assert_eq!(t.name, fx.territory);
    assert_eq!(t.total_space, u64::from(fx.territory_gib) << 30);
    assert!(t.remaining_space <= t.total_space);
    let now = chain.best_block().await.expect("best block");
    assert!(t.deadline > now, "deadline {} <= now {now}", t.deadline);
    assert!(
        chain
            .territory(&fx.owner, "no-such-territory")
            .await
            .expect("read")
            .is_none()
    );
    chain
        .check_upload(&fx.owner, &fx.territory, 1)
        .await
        .expect("upload allowed");
}

/// A declaration lands in a block, locks space and shows in the order state; declaring the
/// same fid again is `AlreadyExists`.
pub async fn declare_and_read_state(chain: &dyn Chain, fx: &Fixture) -> DeclarationRequest {
    let request = sample_request(&fx.owner, &fx.territory, 2, &format!("{}-declare", fx.seed));
    let before = chain
        .territory(&fx.owner, &fx.territory)
        .await
        .expect("read")
        .expect("territory");
    assert_eq!(
        chain.order_state(&request.fid).await.expect("state"),
        OrderState::Absent
    );
    let receipt = chain.declare_upload(&request).await.expect("declare");
    assert!(receipt.block_number > 0);
    let expected = if fx.stores_immediately {
        OrderState::Stored
    } else {
        OrderState::Declared
    };
    assert_eq!(
        chain.order_state(&request.fid).await.expect("state"),
        expected
    );
    let after = chain
        .territory(&fx.owner, &fx.territory)
        .await
        .expect("read")
        .expect("territory");
    assert_eq!(
        before.remaining_space - after.remaining_space,
        2 * SPACE_PER_SEGMENT,
        "a declaration takes 96 MiB per segment"
    );
    let again = chain.declare_upload(&request).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "second declaration: {again:?}"
    );
    request
}

/// No authorization: refused with `NotAuthorized`, not retryable, nothing recorded.
pub async fn refused_without_authorization(chain: &dyn Chain, fx: &Fixture) {
    let request = sample_request(
        &fx.stranger,
        &fx.territory,
        1,
        &format!("{}-noauth", fx.seed),
    );
    let err = chain
        .declare_upload(&request)
        .await
        .expect_err("must be refused");
    assert!(
        matches!(err, Error::NotAuthorized { .. }),
        "expected NotAuthorized, got {err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        chain.order_state(&request.fid).await.expect("state"),
        OrderState::Absent
    );
    let pre = chain.check_upload(&fx.stranger, &fx.territory, 1).await;
    assert!(matches!(pre, Err(Error::NotAuthorized { .. })), "{pre:?}");
}

/// A declaration bigger than the territory: refused with `InsufficientSpace`.
pub async fn refused_without_space(chain: &dyn Chain, fx: &Fixture) {
    let total = u64::from(fx.territory_gib) << 30;
    let segments = (total / SPACE_PER_SEGMENT + 1) as usize;
    let request = sample_request(
        &fx.owner,
        &fx.territory,
        segments,
        &format!("{}-nospace", fx.seed),
    );
    let err = chain
        .declare_upload(&request)
        .await
        .expect_err("must be refused");
    assert!(
        matches!(err, Error::InsufficientSpace { .. }),
        "expected InsufficientSpace, got {err:?}"
    );
    assert!(!err.is_retryable());
    let pre = chain
        .check_upload(&fx.owner, &fx.territory, segments as u64 * SEGMENT_SIZE)
        .await;
    assert!(
        matches!(pre, Err(Error::InsufficientSpace { .. })),
        "{pre:?}"
    );
    let missing = chain.check_upload(&fx.owner, "no-such-territory", 1).await;
    assert!(
        matches!(missing, Err(Error::TerritoryNotFound { .. })),
        "{missing:?}"
    );
}

/// Deleting: a stored file goes away and its space comes back; a fid that is not a stored file
/// is `NotFound` (on CESS that includes a deal not yet stored).
pub async fn delete_file(chain: &dyn Chain, fx: &Fixture, declared: &DeclarationRequest) {
    let unknown = Hash64::of_bytes(format!("{}-never-declared", fx.seed).as_bytes());
    let err = chain
        .delete_file(&fx.owner, &unknown)
        .await
        .expect_err("unknown fid");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    if fx.stores_immediately {
        let before = chain
            .territory(&fx.owner, &fx.territory)
            .await
            .expect("read")
            .expect("territory");
        chain
            .delete_file(&fx.owner, &declared.fid)
            .await
            .expect("delete");
        assert_eq!(
            chain.order_state(&declared.fid).await.expect("state"),
            OrderState::Absent
        );
        let after = chain
            .territory(&fx.owner, &fx.territory)
            .await
            .expect("read")
            .expect("territory");
        assert_eq!(
            after.remaining_space - before.remaining_space,
            declared.locked_space()
        );
    } else {
        let err = chain
            .delete_file(&fx.owner, &declared.fid)
            .await
            .expect_err("a deal is not a file yet");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert_eq!(
            chain.order_state(&declared.fid).await.expect("state"),
            OrderState::Declared
        );
    }
}

/// Every check, in an order that works on a fresh fixture.
pub async fn run_all(chain: &dyn Chain, fx: &Fixture) {
    register_is_idempotent(chain, fx).await;
    authorization_is_visible(chain, fx).await;
    territory_is_readable(chain, fx).await;
    let declared = declare_and_read_state(chain, fx).await;
    refused_without_authorization(chain, fx).await;
    refused_without_space(chain, fx).await;
    delete_file(chain, fx, &declared).await;
}
