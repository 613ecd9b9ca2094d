//! The settlement worker: drains the outbox into the chain.
//!
//! Each pass takes the oldest due pending row of this gateway whose fid has no older pending row
//! (so a deletion never overtakes its declaration) and settles it:
//!
//! - declaration: read the order's state; if the chain already has it (a previous run sent it
//!   and died before recording it), record `declared`; else send `upload_declaration`
//!   (`AlreadyExists` also means `declared`);
//! - deletion: if the chain has no such order, record `deleted` (nothing to do); else send
//!   `delete_file`. On CESS a declared order that storage miners have not yet reported stored
//!   cannot be deleted: the row waits (with backoff) until it can.
//!
//! Errors the chain-client marks retryable (node down, transaction dropped) keep the row
//! `pending` with its next attempt pushed back per [`RetryConfig`]; any other refusal makes it
//! `failed; reason=...` and it is not retried.

use std::sync::Arc;
use std::time::Duration;

use deoss_chain_client::{DeclarationRequest, Error as ChainError, Fid, OrderState};

use super::Settlement;
use crate::catalogue::{SettlementKind, SettlementRecord, SettlementState, now_ms};

/// Retries of outbox rows: exponential backoff from `initial` by `multiplier` up to `max`,
/// forever (a storage order is never dropped because the chain was down).
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Longest delay between attempts.
    pub max: Duration,
    /// Growth of the delay per failed attempt.
    pub multiplier: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            multiplier: 2,
        }
    }
}

impl RetryConfig {
    /// The delay before attempt `attempts + 1`, after `attempts` (>= 1) failures.
    pub fn delay(&self, attempts: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempts {
            d = d.saturating_mul(self.multiplier.max(1));
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// How often the worker looks at the outbox when nothing woke it.
const POLL: Duration = Duration::from_millis(500);

/// What one attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Final state, with the block when known, or the reason.
    Done(SettlementState, Option<u64>, Option<String>),
    /// Try again later.
    Retry(String),
}

impl Settlement {
    /// Runs until `stop` turns true: settles due rows, then waits for a wake-up or the poll
    /// interval.
    pub async fn run_worker(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let gateway = self.chain.gateway_account().to_string();
        loop {
            if *stop.borrow() {
                return;
            }
            // Stopping mid-attempt is safe: the next run reads the order's state first.
            let settled = tokio::select! {
                r = self.settle_next(&gateway) => match r {
                    Ok(settled) => settled,
                    Err(e) => {
                        tracing::error!(error = %e, "settlement outbox unreadable");
                        false
                    }
                },
                _ = stop.changed() => return,
            };
            if settled {
                continue;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Settles the next due row of `gateway`, if any; returns whether there was one.
    pub async fn settle_next(
        &self,
        gateway: &str,
    ) -> Result<bool, crate::catalogue::CatalogueError> {
        let Some(row) = self.catalogue.settlement_due(gateway, now_ms()).await? else {
            return Ok(false);
        };
        let outcome = self.attempt(&row).await;
        let attempts = row.attempts + 1;
        match outcome {
            Outcome::Done(state, block, reason) => {
                // Given back as soon as the chain counts the order (or never will), before the
                // catalogue write: meanwhile an admission would count it twice.
                if row.kind == SettlementKind::Declare
                    && let Some(fid) = &row.fid
                {
                    self.release_declared(fid);
                }
                tracing::info!(
                    id = row.id,
                    kind = row.kind.as_str(),
                    fid = row.fid.as_deref().unwrap_or(""),
                    state = state.as_str(),
                    block,
                    "settled"
                );
                self.catalogue
                    .settlement_update(
                        row.id,
                        state,
                        block.map(|b| b as i64),
                        reason.as_deref(),
                        attempts,
                        now_ms(),
                    )
                    .await?;
            }
            Outcome::Retry(why) => {
                let delay = self.cfg.retry.delay(attempts);
                tracing::warn!(id = row.id, kind = row.kind.as_str(), attempts, delay_ms = delay.as_millis() as u64,
                    reason = %why, "settlement will be retried");
                self.catalogue
                    .settlement_update(
                        row.id,
                        SettlementState::Pending,
                        None,
                        Some(&why),
                        attempts,
                        now_ms() + delay.as_millis() as i64,
                    )
                    .await?;
            }
        }
        Ok(true)
    }

    /// One attempt at a row.
    pub async fn attempt(&self, row: &SettlementRecord) -> Outcome {
        let fid = match row.fid.as_deref().map(Fid::from_hex) {
            Some(Ok(fid)) => fid,
            _ => {
                return Outcome::Done(
                    SettlementState::Failed,
                    None,
                    Some(super::reason("invalid_row", "the row has no valid fid")),
                );
            }
        };
        match row.kind {
            SettlementKind::Declare => self.declare(row, &fid).await,
            SettlementKind::Delete => self.delete(row, &fid).await,
        }
    }

    async fn declare(&self, row: &SettlementRecord, fid: &Fid) -> Outcome {
        let request: DeclarationRequest = match row.request.as_deref().map(serde_json::from_str) {
            Some(Ok(r)) => r,
            _ => {
                return Outcome::Done(
                    SettlementState::Failed,
                    None,
                    Some(super::reason(
                        "invalid_row",
                        "the stored declaration is unreadable",
                    )),
                );
            }
        };
        match self.chain.order_state(fid).await {
            Ok(OrderState::Absent) => {}
            Ok(_) => return self.already_declared(fid).await,
            Err(e) => return failure(e),
        }
        match self.chain.declare_upload(&request).await {
            Ok(receipt) => {
                Outcome::Done(SettlementState::Declared, Some(receipt.block_number), None)
            }
            Err(ChainError::AlreadyExists { .. }) => self.already_declared(fid).await,
            Err(e) => failure(e),
        }
    }

    /// The order is on chain from an earlier attempt: its block if the backend knows it (the dev
    /// ledger), else the block at which it was seen.
    async fn already_declared(&self, fid: &Fid) -> Outcome {
        if let Some(order) = self.chain.dev_ledger().and_then(|l| l.order(fid)) {
            return Outcome::Done(SettlementState::Declared, Some(order.declared_block), None);
        }
        match self.chain.best_block().await {
            Ok(b) => Outcome::Done(SettlementState::Declared, Some(b), None),
            Err(e) => failure(e),
        }
    }

    async fn delete(&self, row: &SettlementRecord, fid: &Fid) -> Outcome {
        let owner: deoss_chain_client::AccountId = match row.owner.as_deref().map(str::parse) {
            Some(Ok(o)) => o,
            _ => {
                return Outcome::Done(
                    SettlementState::Failed,
                    None,
                    Some(super::reason("invalid_row", "the row has no valid owner")),
                );
            }
        };
        match self.chain.order_state(fid).await {
            Ok(OrderState::Absent) => {
                return Outcome::Done(
                    SettlementState::Deleted,
                    None,
                    Some("no order on chain (never declared or already deleted)".into()),
                );
            }
            Ok(OrderState::Declared) => {
                return Outcome::Retry(
                    "the order is declared but not yet stored by miners; CESS deletes only \
                     stored files"
                        .into(),
                );
            }
            Ok(_) => {}
            Err(e) => return failure(e),
        }
        match self.chain.delete_file(&owner, fid).await {
            Ok(receipt) => {
                Outcome::Done(SettlementState::Deleted, Some(receipt.block_number), None)
            }
            Err(ChainError::NotFound { .. }) => Outcome::Done(
                SettlementState::Deleted,
                None,
                Some("no stored file on chain (already gone)".into()),
            ),
            Err(e) => failure(e),
        }
    }
}

/// The chain's error, kept whole for operators behind its stable code (the part clients see).
fn failure(e: ChainError) -> Outcome {
    let why = super::reason(e.as_str(), error_chain(&e));
    if e.is_retryable() {
        Outcome::Retry(why)
    } else {
        Outcome::Done(SettlementState::Failed, None, Some(why))
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
