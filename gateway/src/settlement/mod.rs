//! Settlement: every stored object becomes a storage order on chain (CESS `FileBank`), through
//! a durable outbox, without an S3 request ever waiting for a block.
//!
//! - **Admission** ([`Settlement::admit`]): before an upload is accepted, the owner's chain account
//!   must have authorized this gateway and the territory must exist, be active, not be expired
//!   and have room. Answers are cached for [`SettlementConfig::check_cache`]; when the chain
//!   cannot be reached the last answer (up to [`SettlementConfig::stale_check`] old) is used,
//!   else the upload gets `503 ServiceUnavailable`. Admission reserves the space the upload's
//!   order will lock, so uploads in flight count against the territory (see `reserve`).
//! - **Outbox**: the catalogue transaction that makes an object visible also writes its
//!   declaration row (or a `none` row saying why it has no order); the one that retires an object
//!   queues a deletion of its order. See `catalogue::settlement`.
//! - **Worker** ([`worker`]): drains the outbox with retries and exponential backoff
//!   ([`RetryConfig`]). It is idempotent: it reads the order's state on chain before sending
//!   anything and treats `AlreadyExists` as done, so each order settles exactly once, across
//!   restarts and crashes between "sent" and "recorded". Clients see a row's state with a short
//!   reason code ([`header_value`]); the chain's own words are kept for operators ([`describe`]).
//!
//! # Which objects are declared
//!
//! CESS takes exactly 12 fragments (4 data + 8 parity) per segment, so only objects whose every
//! extent is stored as fragments of the `cess` profile are declared. Inline objects (under
//! `limits.inline_threshold`, kept in the catalogue) and objects of other profiles get the state
//! `none; reason=...`. A multipart object is declared with the segments of all its parts, in part
//! order; if any part is inline (a last part under the inline threshold) it is not declarable.
//!
//! # fid and names
//!
//! A segment hash is SHA-256 of the sealed segment's bytes (before the last fragment's zero
//! padding), computed in the upload pipeline; fragment hashes are the SHA-256 names fragments are
//! stored under; the fid is `deoss_chain_client::fid_of_segments` over the segment hashes. Each
//! version has a fresh data key, so its fid is unique. The declared `file_name` is the S3 key
//! when it is 3 to 63 bytes; see [`file_name_for`] for the others.
//!
//! # Dev ledger defaults
//!
//! On the embedded dev ledger (`--chain dev`, the default) a user created without `--account`
//! gets a deterministic dev account ([`dev_account`]) and, the first time it uploads, the gateway
//! authorizes itself for that account and mints it the default territory
//! ([`SettlementConfig::dev_territory_gib`] GiB for [`SettlementConfig::dev_territory_days`]
//! days). So `deoss serve` plus the aws CLI works with no set-up. This is only possible because
//! the dev ledger is a development ledger with one signer; on `--chain cess` nothing is
//! provisioned: users need `--account`, the account must have authorized the gateway
//! (`Oss.authorize`) and bought a territory.

mod reserve;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deoss_chain_client::{
    AccountId, Chain, DeclarationRequest, FRAGMENTS_PER_SEGMENT, Fid, Hash64, MAX_NAME_LEN,
    MIN_FILE_NAME_LEN, SegmentDeclaration, Territory, fid_of_segments,
};
use sha2::{Digest as _, Sha256};

use crate::catalogue::{
    Bucket, Catalogue, CatalogueError, ExtentRecord, NewSettlement, SettlementState,
};

pub use reserve::Reservation;
pub use worker::RetryConfig;

/// Tunables of settlement (set from the gateway's `[chain]` config).
#[derive(Debug, Clone)]
pub struct SettlementConfig {
    /// Territory used when neither the bucket nor the user names one.
    pub default_territory: String,
    /// Size of the territory minted for dev accounts on the dev ledger.
    pub dev_territory_gib: u32,
    /// Lifetime of that territory.
    pub dev_territory_days: u32,
    /// How long an admission answer (authorization, territory) is reused.
    pub check_cache: Duration,
    /// How old an answer may be and still be used while the chain is unreachable.
    pub stale_check: Duration,
    pub retry: RetryConfig,
}

impl Default for SettlementConfig {
    fn default() -> Self {
        Self {
            default_territory: "deoss".into(),
            dev_territory_gib: 10 * 1024,
            dev_territory_days: 365,
            check_cache: Duration::from_secs(5),
            stale_check: Duration::from_secs(600),
            retry: RetryConfig::default(),
        }
    }
}

/// Why an upload is not admitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// The chain says no (or the user has no account); the message names the cause.
    #[error("{0}")]
    Refused(String),
    /// The chain could not be asked and no recent answer is known.
    #[error("the settlement chain is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// Who an upload is settled for, and where the space comes from.
#[derive(Debug, Clone)]
pub struct Payer {
    pub account: AccountId,
    pub territory: String,
    /// The account was derived by the gateway (no `--account`): a dev account.
    pub implicit: bool,
    /// The territory space admission reserved for the upload; given back when the last clone
    /// is dropped, unless handed to [`Settlement::hold_until_declared`].
    pub reservation: Reservation,
}

#[derive(Debug, Clone)]
struct Snapshot {
    authorized: bool,
    territory: Option<Territory>,
    now: u64,
    /// The territory's reservation epoch when the chain was asked (see `reserve`).
    epoch: u64,
}

/// How many times admission asks the chain again when declarations keep settling meanwhile;
/// after that it judges with the answer it has.
const EPOCH_RETRIES: u32 = 3;

/// How long an upload refused only because a declared order is still reserved here waits for
/// the worker to record the declaration (a dev ledger block is immediate, a CESS block ~6 s).
const DECLARATION_CATCH_UP: Duration = Duration::from_secs(15);

/// A chain answer kept for admission: fresh for `check_cache` unless a declaration settled
/// since (`current` false), and a fallback while the chain is unreachable for `stale_check`.
#[derive(Debug, Clone)]
struct Cached {
    at: Instant,
    snap: Snapshot,
    current: bool,
}

/// Settlement for one gateway: its chain, its admission cache, its outbox.
#[derive(Debug)]
pub struct Settlement {
    chain: Arc<dyn Chain>,
    catalogue: Catalogue,
    cfg: SettlementConfig,
    cache: Mutex<HashMap<(AccountId, String), Cached>>,
    /// Dev accounts are provisioned one at a time: the first uploads of an account arrive
    /// together, and all but one would find the territory just minted by another.
    provisioning: tokio::sync::Mutex<()>,
    reservations: reserve::Reservations,
    wake: tokio::sync::Notify,
}

/// The deterministic dev account of a user without one: SHA-256 of a fixed prefix and the user
/// name, used as a public key. Nobody holds its secret; it exists on the dev ledger only.
pub fn dev_account(user_name: &str) -> AccountId {
    let mut h = Sha256::new();
    h.update(b"deoss/dev-account/v1\0"); // format constant: never change
    h.update(user_name.as_bytes());
    AccountId(h.finalize().into())
}

/// The CESS `file_name` for an S3 key (3 to 63 bytes): the key itself when it fits; a shorter
/// key is right-padded with `_`; a longer one keeps its first bytes (cut on a character
/// boundary) followed by `~` and the first 16 hex digits of the key's SHA-256, 63 bytes at most.
pub fn file_name_for(key: &str) -> String {
    if (MIN_FILE_NAME_LEN..=MAX_NAME_LEN).contains(&key.len()) {
        return key.to_string();
    }
    if key.len() < MIN_FILE_NAME_LEN {
        let mut name = key.to_string();
        while name.len() < MIN_FILE_NAME_LEN {
            name.push('_');
        }
        return name;
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let keep = MAX_NAME_LEN - 1 - 16;
    let mut cut = keep;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{}", &key[..cut], &digest[..16])
}

impl Settlement {
    pub fn new(chain: Arc<dyn Chain>, catalogue: Catalogue, cfg: SettlementConfig) -> Self {
        Self {
            chain,
            catalogue,
            cfg,
            cache: Mutex::default(),
            provisioning: tokio::sync::Mutex::default(),
            reservations: reserve::Reservations::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn chain(&self) -> &Arc<dyn Chain> {
        &self.chain
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Wakes the worker: something was enqueued.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// The account and territory that uploads by `user_id` into `bucket` are settled with.
    pub async fn payer(&self, user_id: &str, bucket: &Bucket) -> Result<Payer, AdmitError> {
        let user = self
            .catalogue
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AdmitError::Refused(format!("user {user_id} no longer exists")))?;
        let territory = bucket
            .territory
            .clone()
            .or(user.territory.clone())
            .unwrap_or_else(|| self.cfg.default_territory.clone());
        match &user.chain_account {
            Some(text) => {
                let account = text.parse::<AccountId>().map_err(|_| {
                    AdmitError::Refused(format!(
                        "user {}'s chain account {text:?} is not a valid address",
                        user.name
                    ))
                })?;
                Ok(Payer {
                    account,
                    territory,
                    implicit: false,
                    reservation: Reservation::default(),
                })
            }
            None if self.chain.dev_ledger().is_some() => Ok(Payer {
                account: dev_account(&user.name),
                territory,
                implicit: true,
                reservation: Reservation::default(),
            }),
            None => Err(AdmitError::Refused(format!(
                "user {} has no chain account: on a CESS gateway every user needs one \
                 (deoss admin user create NAME --account SS58)",
                user.name
            ))),
        }
    }

    /// Whether an upload of `size` bytes (0 when unknown: one segment) by `user_id` into
    /// `bucket` may go ahead. If so, the space its storage order will lock is reserved in the
    /// territory until the returned payer (and its clones) are dropped: uploads in flight count
    /// against what the chain says is left.
    pub async fn admit(
        &self,
        user_id: &str,
        bucket: &Bucket,
        size: u64,
    ) -> Result<Payer, AdmitError> {
        let payer = self.payer(user_id, bucket).await?;
        let mut snap = self.snapshot(&payer, false).await?;
        if payer.implicit
            && let Some(ledger) = self.chain.dev_ledger()
            && (!snap.authorized || snap.territory.is_none())
        {
            let _one_at_a_time = self.provisioning.lock().await;
            snap = self.snapshot(&payer, true).await?;
            let gateway = self.chain.gateway_account();
            let fail = |e: deoss_chain_client::Error| AdmitError::Unavailable(e.to_string());
            if !snap.authorized {
                ledger
                    .authorize(&payer.account, &gateway)
                    .await
                    .map_err(fail)?;
            }
            if snap.territory.is_none() {
                ledger
                    .mint_territory(
                        &payer.account,
                        &payer.territory,
                        self.cfg.dev_territory_gib,
                        self.cfg.dev_territory_days,
                    )
                    .await
                    .map_err(fail)?;
            }
            if !snap.authorized || snap.territory.is_none() {
                tracing::info!(account = %payer.account, territory = %payer.territory,
                    "dev ledger: authorized the gateway and minted a territory for a dev account");
                snap = self.snapshot(&payer, true).await?;
            }
        }
        let gateway = self.chain.gateway_account().to_string();
        let needed = deoss_chain_client::upload_space(size);
        let key = (payer.account, payer.territory.clone());
        let mut attempts = 0;
        let waiting_since = Instant::now();
        loop {
            // An answer asked before a declaration's reservation was given back may not count
            // that declaration: it is asked again, a few times at most.
            let seen = (attempts < EPOCH_RETRIES).then_some(snap.epoch);
            let reserved = match self
                .reservations
                .reserve(key.clone(), needed, seen, |held| {
                    judge(&snap, &payer, &gateway, needed, held)
                }) {
                Ok(reserved) => reserved,
                // The other way round: an order the chain has just counted is still reserved
                // here until the worker records it declared, so it counts twice for a moment.
                // If that alone refuses the upload, wait (briefly) for the worker to catch up.
                Err(refusal) => {
                    let waited = waiting_since.elapsed();
                    if waited >= DECLARATION_CATCH_UP
                        || !self.reservations.awaiting_in(&key)
                        || judge(&snap, &payer, &gateway, needed, 0).is_err()
                    {
                        return Err(refusal);
                    }
                    let step = (DECLARATION_CATCH_UP - waited).min(Duration::from_secs(1));
                    self.reservations.released(step).await;
                    snap = self.snapshot(&payer, true).await?;
                    continue;
                }
            };
            if let Some(reservation) = reserved {
                return Ok(Payer {
                    reservation,
                    ..payer
                });
            }
            attempts += 1;
            snap = self.snapshot(&payer, true).await?;
        }
    }

    /// An object admitted for `payer` is committed. If its storage order `fid` (a pending
    /// declaration) is still to be declared, the space stays reserved until it is, since the
    /// chain counts it only from then on; with no order to declare it is given back now.
    pub fn hold_until_declared(&self, payer: &Payer, fid: Option<String>) {
        if let Some(fid) = fid {
            self.reservations
                .await_declaration(fid, payer.reservation.clone());
        }
    }

    /// The fid of a planned outbox row that is to be declared.
    pub fn pending_fid(row: &NewSettlement) -> Option<String> {
        (row.state == SettlementState::Pending)
            .then(|| row.fid.clone())
            .flatten()
    }

    /// The declaration of `fid` is settled: its space is the chain's to count now. The cached
    /// answer for its territory is no longer current, so the next admission asks the chain for
    /// its new figure; it stays the fallback should the chain be unreachable then.
    fn release_declared(&self, fid: &str) {
        if let Some(key) = self.reservations.settled(fid)
            && let Some(cached) = self.cache.lock().expect("poisoned").get_mut(&key)
        {
            cached.current = false;
        }
    }

    async fn snapshot(&self, payer: &Payer, refresh: bool) -> Result<Snapshot, AdmitError> {
        let key = (payer.account, payer.territory.clone());
        let cached = self.cache.lock().expect("poisoned").get(&key).cloned();
        if !refresh
            && let Some(c) = &cached
            && c.current
            && c.at.elapsed() < self.cfg.check_cache
        {
            return Ok(c.snap.clone());
        }
        let epoch = self.reservations.epoch(&key);
        let fetched = async {
            let authorized = self.chain.is_authorized(&payer.account).await?;
            let territory = self
                .chain
                .territory(&payer.account, &payer.territory)
                .await?;
            let now = self.chain.best_block().await?;
            Ok::<_, deoss_chain_client::Error>(Snapshot {
                authorized,
                territory,
                now,
                epoch,
            })
        }
        .await;
        match fetched {
            Ok(snap) => {
                self.cache.lock().expect("poisoned").insert(
                    key,
                    Cached {
                        at: Instant::now(),
                        snap: snap.clone(),
                        current: true,
                    },
                );
                Ok(snap)
            }
            Err(e) => match cached {
                Some(c) if c.at.elapsed() < self.cfg.stale_check => {
                    tracing::warn!(error = %e, age_ms = c.at.elapsed().as_millis() as u64,
                        "chain unreachable: admitting with the last known answer");
                    Ok(c.snap)
                }
                _ => {
                    tracing::error!(error = %e, "chain unreachable during an upload check");
                    Err(AdmitError::Unavailable(e.as_str().to_string()))
                }
            },
        }
    }

    /// The outbox row for a version made of `extents` (in part order): a pending declaration,
    /// or `none` with the reason it cannot be declared.
    pub fn plan(
        &self,
        payer: &Payer,
        bucket: &str,
        key: &str,
        size: u64,
        extents: &[ExtentRecord],
    ) -> NewSettlement {
        let gateway = self.chain.gateway_account().to_string();
        match declaration(payer, bucket, key, size, extents) {
            Ok(request) => NewSettlement {
                gateway,
                state: SettlementState::Pending,
                fid: Some(request.fid.to_string()),
                owner: Some(payer.account.to_string()),
                request: Some(serde_json::to_string(&request).expect("requests serialize")),
                reason: None,
            },
            Err(reason) => NewSettlement {
                gateway,
                state: SettlementState::None,
                fid: None,
                owner: Some(payer.account.to_string()),
                request: None,
                reason: Some(reason),
            },
        }
    }
}

/// Applies the chain's answer to an upload whose order will lock `needed` bytes, while this
/// gateway already holds `held` bytes of the territory for other uploads.
fn judge(
    snap: &Snapshot,
    payer: &Payer,
    gateway: &str,
    needed: u64,
    held: u64,
) -> Result<(), AdmitError> {
    if !snap.authorized {
        return Err(AdmitError::Refused(format!(
            "not authorized: chain account {} has not authorized this gateway ({gateway}) to \
             store for it (Oss.authorize)",
            payer.account
        )));
    }
    let Some(t) = &snap.territory else {
        return Err(AdmitError::Refused(format!(
            "no territory: chain account {} has no territory named {:?}",
            payer.account, payer.territory
        )));
    };
    // The messages are made from the snapshot, not from the chain error's text.
    match t.check_room(needed.saturating_add(held), snap.now) {
        Ok(()) => Ok(()),
        Err(deoss_chain_client::Error::InsufficientSpace { remaining, .. }) => {
            let left = remaining.saturating_sub(held);
            let in_flight = if held > 0 {
                format!(" ({held} more are reserved by uploads in progress)")
            } else {
                String::new()
            };
            Err(AdmitError::Refused(format!(
                "not enough space: territory {:?} of {} has {left} bytes left{in_flight}, \
                 {needed} needed",
                payer.territory, payer.account
            )))
        }
        Err(_) if snap.now > t.deadline => Err(AdmitError::Refused(format!(
            "territory expired: territory {:?} of {} expired at block {}",
            payer.territory, payer.account, t.deadline
        ))),
        Err(_) => Err(AdmitError::Refused(format!(
            "territory unusable: territory {:?} of {} is {}, not active",
            payer.territory,
            payer.account,
            t.state.as_str()
        ))),
    }
}

/// The declaration of a version, or why it has none.
fn declaration(
    payer: &Payer,
    bucket: &str,
    key: &str,
    size: u64,
    extents: &[ExtentRecord],
) -> Result<DeclarationRequest, String> {
    let mut segments = Vec::new();
    for e in extents {
        let what = if e.part == 0 {
            "the object".to_string()
        } else {
            format!("part {}", e.part)
        };
        if e.inline_data.is_some() {
            return Err(reason(
                "inline",
                format_args!(
                    "{what} is stored inline (under the inline threshold): no fragments to declare"
                ),
            ));
        }
        if e.k as usize + e.m as usize != FRAGMENTS_PER_SEGMENT || e.k != 4 {
            return Err(reason(
                "profile",
                format_args!(
                    "{what} uses erasure profile {}+{}; CESS takes 4+8 (the cess profile)",
                    e.k, e.m
                ),
            ));
        }
        let Some(hashes) = &e.segment_hashes else {
            return Err(reason(
                "no_segment_hashes",
                format_args!("{what} was stored before segment hashes were kept"),
            ));
        };
        for (s, hash) in hashes.iter().enumerate() {
            let fragments: Vec<Hash64> = e
                .fragments
                .iter()
                .filter(|f| f.segment as usize == s)
                .map(|f| Hash64::from_digest(f.hash.0))
                .collect();
            if fragments.len() != FRAGMENTS_PER_SEGMENT {
                return Err(reason(
                    "fragments",
                    format_args!(
                        "segment {s} of {what} has {} fragments, not {FRAGMENTS_PER_SEGMENT}",
                        fragments.len()
                    ),
                ));
            }
            segments.push(SegmentDeclaration {
                hash: Hash64::from_digest(hash.0),
                fragments,
            });
        }
    }
    if segments.is_empty() {
        return Err(reason("no_segments", "the object has no segments"));
    }
    let hashes: Vec<Fid> = segments.iter().map(|s| s.hash).collect();
    let fid = fid_of_segments(&hashes).map_err(|e| reason("invalid_declaration", e))?;
    let request = DeclarationRequest {
        fid,
        segments,
        owner: payer.account,
        file_name: file_name_for(key),
        bucket_name: bucket.to_string(),
        territory: payer.territory.clone(),
        file_size: size,
    };
    request
        .validate()
        .map_err(|e| reason("invalid_declaration", e))?;
    Ok(request)
}

/// A row's reason as stored: a short stable code, then the full text for `deoss admin`.
pub(crate) fn reason(code: &str, text: impl std::fmt::Display) -> String {
    format!("{code}: {text}")
}

/// The code of a stored reason (`code: text`). Rows written before codes were kept get one for
/// their state.
fn reason_code(state: SettlementState, reason: Option<&str>) -> &str {
    let code = reason
        .and_then(|r| r.split_once(": "))
        .map(|(code, _)| code);
    match code {
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => c,
        _ if state == SettlementState::None => "not_declarable",
        _ => "chain_error",
    }
}

/// The `x-deoss-settlement` header value of a declaration row. Its reason is only the code:
/// the full text (the chain's own words, which may carry node addresses, file paths or RPC
/// errors) is for operators, through [`describe`].
pub fn header_value(state: SettlementState, block: Option<i64>, reason: Option<&str>) -> String {
    state_text(state, block, reason_code(state, reason))
}

/// The state of a declaration row with its full reason, for `deoss admin`.
pub fn describe(state: SettlementState, block: Option<i64>, reason: Option<&str>) -> String {
    state_text(state, block, reason.unwrap_or("unknown"))
}

fn state_text(state: SettlementState, block: Option<i64>, reason: &str) -> String {
    let reason = reason.replace(['\r', '\n'], " ");
    match state {
        SettlementState::Pending => "pending".into(),
        SettlementState::Declared => match block {
            Some(b) => format!("declared; block={b}"),
            None => "declared".into(),
        },
        SettlementState::Deleted => match block {
            Some(b) => format!("deleted; block={b}"),
            None => "deleted".into(),
        },
        SettlementState::Failed => format!("failed; reason={reason}"),
        SettlementState::None => format!("none; reason={reason}"),
    }
}

#[cfg(test)]
mod tests;
