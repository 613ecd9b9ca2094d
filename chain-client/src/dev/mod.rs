//! The embedded dev ledger: the default settlement backend.
//!
//! **A development ledger, not consensus.** One process, one key, one file. It exists so a gateway
//! runs and is tested end to end without a CESS node, with the same semantics the gateway relies
//! on (authorization list, territories with space accounting and deadlines, declarations,
//! deletions, events). It proves nothing to anyone but its operator: whoever holds the gateway key
//! can rewrite the whole file and re-sign it. The hash links and signatures detect accidental
//! corruption and edits by someone without the key, nothing more.
//!
//! # File format
//!
//! `<dir>/ledger.jsonl`, one JSON [`Block`] per line, append-only, fsynced after each block.
//! Block 0 is a genesis block naming the format ([`FORMAT`]) and the authority (the gateway's
//! account). Each block holds one call and the events it produced, the hash of its parent, its
//! own hash (SHA-256 over [`HASH_DOMAIN`] and the JSON of the block without `hash` and
//! `signature`) and the authority's sr25519 signature over that hash. Opening the ledger replays
//! every block, checking links, hashes, signatures and that replaying each call yields the
//! recorded events. A torn last line (crash mid-append) is cut off; anything else that does not
//! verify is [`Error::LedgerCorrupt`].
//!
//! Block numbers normally grow by one; [`DevLedger::advance_blocks`] skips ahead (like
//! Chopsticks' `dev_newBlock` with a count) so deadlines can be tested. Territory deadlines are
//! block numbers, [`BLOCKS_PER_DAY`] per day, as on CESS.
//!
//! Storage miners do not exist here: with [`DevLedgerOptions::auto_store`] (the default) a
//! declaration is immediately reported stored (its locked space becomes used space), because the
//! gateway itself holds the fragments. Turn it off to see orders stay `Declared` as they do on
//! CESS until miners report, and use [`DevLedger::mark_stored`] to play the miners.
//!
//! Only one process may open a ledger directory at a time (not enforced).

mod format;
mod state;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::chain::Chain;
use crate::error::{Error, Result};
use crate::key::GatewayKey;
use crate::types::{
    AccountId, DeclarationRequest, Fid, GatewayInfo, OrderState, Registration, Territory,
    TerritoryState, TxReceipt,
};

pub use format::{Block, LedgerCall, LedgerEvent};
use format::{block_hash, read_blocks, verify_blocks};
pub use state::OrderRecord;
use state::State;

/// Format marker written in the genesis block. // format constant: never change
pub const FORMAT: &str = "deoss-dev-ledger/1";
/// Domain separator hashed before each block's body. // format constant: never change
pub const HASH_DOMAIN: &[u8] = b"deoss-dev-ledger/1/block";
/// Ledger file name inside the directory. // format constant: never change
pub const LEDGER_FILE: &str = "ledger.jsonl";

/// Options of [`DevLedger::open_with`].
#[derive(Clone, Debug)]
pub struct DevLedgerOptions {
    /// Report each declaration stored in the same block (the gateway holds the fragments).
    /// Default: true.
    pub auto_store: bool,
}

impl Default for DevLedgerOptions {
    fn default() -> Self {
        DevLedgerOptions { auto_store: true }
    }
}

struct Inner {
    file: File,
    /// Length of the file up to the last durable block.
    len: u64,
    /// Number and hash of the last block, if any. Older blocks stay in the file only: kept in
    /// memory they grew with every order for the life of the process.
    head: Option<(u64, String)>,
    state: State,
}

/// The embedded dev ledger (see the module docs). Cheap to clone; clones share the ledger.
#[derive(Clone)]
pub struct DevLedger {
    inner: Arc<Mutex<Inner>>,
    key: GatewayKey,
    path: PathBuf,
    options: DevLedgerOptions,
}

impl std::fmt::Debug for DevLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevLedger")
            .field("path", &self.path)
            .field("authority", &self.key.account())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl DevLedger {
    /// Opens (or creates) the ledger in `dir` with default options.
    pub fn open(dir: &Path, key: GatewayKey) -> Result<Self> {
        Self::open_with(dir, key, DevLedgerOptions::default())
    }

    /// Opens (or creates) the ledger in `dir`, verifying every block. The ledger must have been
    /// created with the same key.
    pub fn open_with(dir: &Path, key: GatewayKey, options: DevLedgerOptions) -> Result<Self> {
        let path = dir.join(LEDGER_FILE);
        let io = |source| Error::LedgerIo {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let (blocks, good_len, total_len) = read_blocks(&path)?;
        if good_len < total_len {
            tracing::warn!(path = %path.display(), "dev ledger: cutting off a torn last block");
            let f = OpenOptions::new().write(true).open(&path).map_err(io)?;
            f.set_len(good_len).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        let state = verify_blocks(&path, &blocks, Some(&key.account()))?;
        let head = blocks.last().map(|b| (b.number, b.hash.clone()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let ledger = DevLedger {
            inner: Arc::new(Mutex::new(Inner {
                file,
                len: good_len,
                head,
                state,
            })),
            key,
            path,
            options,
        };
        if ledger.lock().head.is_none() {
            let authority = ledger.key.account();
            ledger.append_blocking(LedgerCall::Genesis {
                format: FORMAT.to_string(),
                authority,
                note: "deoss development ledger: single node, no consensus".to_string(),
            })?;
        }
        Ok(ledger)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the state as it was before the failed call
        // (state is only replaced after the block is durable), so poisoning can be ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append_blocking(&self, call: LedgerCall) -> Result<TxReceipt> {
        let mut inner = self.lock();
        let (number, parent) = match &inner.head {
            Some((last, hash)) => {
                let skip = match &call {
                    LedgerCall::AdvanceBlocks { count } => *count,
                    _ => 0,
                };
                (last + 1 + skip, hash.clone())
            }
            None => (0, "0".repeat(64)),
        };
        // Applied in place: every call checks everything before it changes anything, so a
        // refused call leaves the state as it was. (Cloning the state per block made each
        // block cost as much as all the orders before it.)
        let events = inner.state.apply(&call, number, self.options.auto_store)?;
        let ts = now_ms();
        let hash = block_hash(number, &parent, ts, &call, &events);
        let block = Block {
            number,
            parent,
            timestamp_ms: ts,
            call,
            events,
            hash: hex::encode(hash),
            signature: hex::encode(self.key.sign(&hash)),
        };
        let mut line = serde_json::to_vec(&block).map_err(|e| Error::LedgerIo {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let io = |source| Error::LedgerIo {
            path: self.path.clone(),
            source,
        };
        let written = inner
            .file
            .write_all(&line)
            .and_then(|()| inner.file.sync_data());
        if let Err(e) = written {
            // The block is not durable: cut off whatever of it reached the file and rebuild
            // the state from the blocks that are.
            let len = inner.len;
            let _ = inner.file.set_len(len);
            let (blocks, _, _) = read_blocks(&self.path)?;
            inner.state = verify_blocks(&self.path, &blocks, Some(&self.key.account()))?;
            return Err(io(e));
        }
        inner.len += line.len() as u64;
        tracing::debug!(number, call = ?block.call, "dev ledger block");
        let receipt = TxReceipt {
            block_number: number,
            block_hash: format!("0x{}", block.hash),
            finalized: true,
        };
        inner.head = Some((number, block.hash));
        Ok(receipt)
    }

    async fn append(&self, call: LedgerCall) -> Result<TxReceipt> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append_blocking(call))
            .await
            .map_err(|e| Error::LedgerIo {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?
    }

    /// Records that `owner` authorized `operator` (`Oss.authorize`). The dev ledger trusts its
    /// operator to speak for the owner: this is a development helper.
    pub async fn authorize(&self, owner: &AccountId, operator: &AccountId) -> Result<TxReceipt> {
        self.append(LedgerCall::Authorize {
            owner: *owner,
            operator: *operator,
        })
        .await
    }

    /// Withdraws a grant (`Oss.cancel_authorize`).
    pub async fn cancel_authorize(
        &self,
        owner: &AccountId,
        operator: &AccountId,
    ) -> Result<TxReceipt> {
        self.append(LedgerCall::CancelAuthorize {
            owner: *owner,
            operator: *operator,
        })
        .await
    }

    /// Gives `owner` a territory of `gib` GiB for `days` days
    /// (`StorageHandler.mint_territory`, without payment).
    pub async fn mint_territory(
        &self,
        owner: &AccountId,
        name: &str,
        gib: u32,
        days: u32,
    ) -> Result<TxReceipt> {
        self.append(LedgerCall::MintTerritory {
            owner: *owner,
            name: name.to_string(),
            gib,
            days,
        })
        .await
    }

    /// Lets `count` blocks pass without content (one block records the skip).
    pub async fn advance_blocks(&self, count: u64) -> Result<TxReceipt> {
        self.append(LedgerCall::AdvanceBlocks { count }).await
    }

    /// Plays the storage miners: a `Declared` order becomes `Stored`.
    pub async fn mark_stored(&self, fid: &Fid) -> Result<TxReceipt> {
        self.append(LedgerCall::MarkStored { fid: *fid }).await
    }

    /// Number and hash of the last block.
    pub fn head(&self) -> (u64, String) {
        self.lock().head.clone().unwrap_or((0, String::new()))
    }

    /// Up to `limit` blocks with a number at or above `from`, oldest first, read from the file.
    pub fn blocks(&self, from: u64, limit: usize) -> Result<Vec<Block>> {
        let _appends_wait = self.lock();
        let (blocks, _, _) = read_blocks(&self.path)?;
        let start = blocks.partition_point(|b| b.number < from);
        Ok(blocks[start..].iter().take(limit).cloned().collect())
    }

    /// The order for `fid`, including deleted ones.
    pub fn order(&self, fid: &Fid) -> Option<OrderRecord> {
        self.lock().state.orders.get(fid).cloned()
    }

    /// Reads the ledger in `dir` without opening it for writing: for inspection tools running
    /// next to the gateway that owns it. A torn last line (a block being appended) is ignored,
    /// never cut off; every complete block is verified. The authority is not pinned (there is no
    /// key here), only checked to be the same for every block.
    pub fn snapshot(dir: &Path) -> Result<LedgerSnapshot> {
        let path = dir.join(LEDGER_FILE);
        if !path.exists() {
            return Err(Error::LedgerIo {
                path,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let (blocks, _, _) = read_blocks(&path)?;
        let state = verify_blocks(&path, &blocks, None)?;
        Ok(LedgerSnapshot { blocks, state })
    }

    /// Re-reads the file from disk and verifies it; returns the head number.
    pub fn verify(&self) -> Result<u64> {
        let _guard = self.lock();
        let (blocks, _, _) = read_blocks(&self.path)?;
        verify_blocks(&self.path, &blocks, Some(&self.key.account()))?;
        Ok(blocks.last().map(|b| b.number).unwrap_or(0))
    }
}

/// A verified, read-only copy of a ledger file (see [`DevLedger::snapshot`]).
#[derive(Debug, Clone)]
pub struct LedgerSnapshot {
    blocks: Vec<Block>,
    state: State,
}

impl LedgerSnapshot {
    /// Number of the last block.
    pub fn head(&self) -> u64 {
        self.blocks.last().map(|b| b.number).unwrap_or(0)
    }

    /// Up to `limit` blocks with a number at or above `from`, oldest first.
    pub fn blocks(&self, from: u64, limit: usize) -> Vec<Block> {
        let start = self.blocks.partition_point(|b| b.number < from);
        self.blocks[start..].iter().take(limit).cloned().collect()
    }

    /// The order for `fid`, including deleted ones.
    pub fn order(&self, fid: &Fid) -> Option<OrderRecord> {
        self.state.orders.get(fid).cloned()
    }
}

#[async_trait]
impl Chain for DevLedger {
    fn kind(&self) -> &'static str {
        "dev"
    }

    fn gateway_account(&self) -> AccountId {
        self.key.account()
    }

    fn dev_ledger(&self) -> Option<&DevLedger> {
        Some(self)
    }

    async fn best_block(&self) -> Result<u64> {
        Ok(self.head().0)
    }

    async fn register_gateway(&self, info: &GatewayInfo) -> Result<Registration> {
        let account = self.key.account();
        let existing = self.lock().state.gateways.get(&account).cloned();
        match existing {
            Some(current) if current == *info => Ok(Registration::Unchanged),
            Some(_) => Ok(Registration::Updated(
                self.append(LedgerCall::UpdateGateway {
                    account,
                    info: info.clone(),
                })
                .await?,
            )),
            None => Ok(Registration::Registered(
                self.append(LedgerCall::RegisterGateway {
                    account,
                    info: info.clone(),
                })
                .await?,
            )),
        }
    }

    async fn gateway_info(&self, account: &AccountId) -> Result<Option<GatewayInfo>> {
        Ok(self.lock().state.gateways.get(account).cloned())
    }

    async fn is_authorized(&self, owner: &AccountId) -> Result<bool> {
        Ok(self.lock().state.may_act_for(&self.key.account(), owner))
    }

    async fn territory(&self, owner: &AccountId, name: &str) -> Result<Option<Territory>> {
        let inner = self.lock();
        let now = inner.head.as_ref().map_or(0, |(n, _)| *n);
        Ok(inner
            .state
            .territories
            .get(&(*owner, name.to_string()))
            .cloned()
            .map(|mut t| {
                if now > t.deadline && t.state == TerritoryState::Active {
                    t.state = TerritoryState::Expired;
                }
                t
            }))
    }

    async fn declare_upload(&self, request: &DeclarationRequest) -> Result<TxReceipt> {
        self.append(LedgerCall::UploadDeclaration {
            operator: self.key.account(),
            request: request.clone(),
        })
        .await
    }

    async fn delete_file(&self, owner: &AccountId, fid: &Fid) -> Result<TxReceipt> {
        self.append(LedgerCall::DeleteFile {
            operator: self.key.account(),
            owner: *owner,
            fid: *fid,
        })
        .await
    }

    async fn order_state(&self, fid: &Fid) -> Result<OrderState> {
        Ok(self
            .lock()
            .state
            .orders
            .get(fid)
            .map(|r| r.state.clone())
            .unwrap_or(OrderState::Absent))
    }
}
