//! The `Chain` trait: what a gateway needs from a settlement backend.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::cess::{CessChain, CessOptions};
use crate::dev::{DevLedger, DevLedgerOptions};
use crate::error::{Error, Result};
use crate::key::GatewayKey;
use crate::types::{
    AccountId, DeclarationRequest, Fid, GatewayInfo, OrderState, Registration, Territory, TxReceipt,
};

/// A settlement backend: the embedded [`crate::DevLedger`] or the CESS runtime
/// ([`crate::CessChain`]). Object-safe; use it as `Arc<dyn Chain>`.
///
/// Every write waits until the transaction is in a block and returns that block. Reads see the
/// latest block the backend knows (best block for CESS).
#[async_trait]
pub trait Chain: Send + Sync + Debug + 'static {
    /// `"dev"` or `"cess"`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// The gateway's own account (the signer).
    fn gateway_account(&self) -> AccountId;

    /// Number of the latest block (territory deadlines are compared with it).
    async fn best_block(&self) -> Result<u64>;

    /// Registers the gateway (`Oss.register`), or updates it (`Oss.update`) when registered with
    /// other details; sends nothing when already registered as `info`. Call at start-up.
    async fn register_gateway(&self, info: &GatewayInfo) -> Result<Registration>;

    /// The gateway registration of `account`, if any (`Oss.Oss`).
    async fn gateway_info(&self, account: &AccountId) -> Result<Option<GatewayInfo>>;

    /// Whether `owner` has authorized this gateway to act for it (`Oss.AuthorityList(owner)`
    /// contains the gateway's account).
    async fn is_authorized(&self, owner: &AccountId) -> Result<bool>;

    /// `owner`'s territory named `name` (`StorageHandler.Territory`), if it exists.
    async fn territory(&self, owner: &AccountId, name: &str) -> Result<Option<Territory>>;

    /// Declares an upload (`FileBank.upload_declaration`). Fails with
    /// [`Error::NotAuthorized`], [`Error::TerritoryNotFound`], [`Error::TerritoryUnusable`],
    /// [`Error::InsufficientSpace`] or [`Error::AlreadyExists`] when the chain refuses it.
    async fn declare_upload(&self, request: &DeclarationRequest) -> Result<TxReceipt>;

    /// Deletes `owner`'s file (`FileBank.delete_file`). [`Error::NotFound`] when there is no
    /// stored file with that fid (on CESS a declared-but-not-yet-stored deal cannot be deleted).
    async fn delete_file(&self, owner: &AccountId, fid: &Fid) -> Result<TxReceipt>;

    /// Where the order for `fid` stands (`FileBank.File` then `FileBank.DealMap`).
    async fn order_state(&self, fid: &Fid) -> Result<OrderState>;

    /// The embedded dev ledger behind this `Chain`, for its inspection helpers (list blocks, read
    /// an order); `None` for other backends.
    fn dev_ledger(&self) -> Option<&DevLedger> {
        None
    }

    /// The checks the gateway makes before accepting an upload of `size` bytes: `owner`
    /// authorized the gateway, the territory exists, is active, has not expired and has room for
    /// the segments such a file needs. The error names the cause.
    async fn check_upload(&self, owner: &AccountId, territory: &str, size: u64) -> Result<()> {
        if !self.is_authorized(owner).await? {
            return Err(Error::NotAuthorized {
                owner: owner.to_string(),
                gateway: self.gateway_account().to_string(),
            });
        }
        let t =
            self.territory(owner, territory)
                .await?
                .ok_or_else(|| Error::TerritoryNotFound {
                    owner: owner.to_string(),
                    territory: territory.to_string(),
                })?;
        let now = self.best_block().await?;
        t.check_room(crate::types::upload_space(size), now)
    }
}

/// Which backend to open: the gateway's `--chain dev` / `--chain cess`.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded dev ledger in `dir` (created when missing).
    Dev {
        /// Directory of the ledger file.
        dir: PathBuf,
        /// Ledger options.
        options: DevLedgerOptions,
    },
    /// A CESS node.
    Cess {
        /// `ws://` or `wss://` URL of the node.
        url: String,
        /// Connection options.
        options: CessOptions,
    },
}

/// Opens `backend` with the gateway key and returns it as a shared [`Chain`].
pub async fn open(backend: &Backend, key: GatewayKey) -> Result<Arc<dyn Chain>> {
    match backend {
        Backend::Dev { dir, options } => {
            let (dir, options) = (dir.clone(), options.clone());
            // Opening replays and verifies the whole file: keep it off the async threads.
            let ledger =
                tokio::task::spawn_blocking(move || DevLedger::open_with(&dir, key, options))
                    .await
                    .map_err(|e| Error::LedgerIo {
                        path: PathBuf::new(),
                        source: std::io::Error::other(e),
                    })??;
            Ok(Arc::new(ledger))
        }
        Backend::Cess { url, options } => Ok(Arc::new(
            CessChain::connect(url, key, options.clone()).await?,
        )),
    }
}
