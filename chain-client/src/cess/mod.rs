//! The CESS backend: `subxt` with the dynamic API.
//!
//! Calls and storage queries are built by name and encoded against the metadata the node serves,
//! so no generated code pins a runtime version. The one shape that differs between the runtimes
//! we know, `FileBank`'s `UserBrief` (spec 100 has `bucket_name`, spec 137 not), is read from the
//! metadata ([`RuntimeShape`]). On runtimes with buckets the backend creates the owner's bucket
//! (`FileBank.create_bucket`) before the first declaration into it.
//!
//! Transactions are signed by the gateway key, submitted one at a time (nonces stay in order),
//! and watched until included in a block, or finalized when [`CessOptions::wait_for_finality`]
//! is set and the node reports finality. The legacy JSON-RPC methods are used (`author_*`,
//! `state_*`, `chain_*`) because every Substrate node and Chopsticks serve them.

mod calls;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use subxt::backend::LegacyBackend;
use subxt::dynamic::{At, Value};
use subxt::error::TransactionEventsError;
use subxt::ext::scale_value::ValueDef;
use subxt::tx::TransactionStatus;
use subxt::{OnlineClient, SubstrateConfig};

use crate::chain::Chain;
use crate::error::{BoxError, Error, Result};
use crate::key::GatewayKey;
use crate::types::{
    AccountId, DeclarationRequest, Fid, GatewayInfo, OrderState, Registration, Territory,
    TerritoryState, TxReceipt,
};

pub use calls::{RuntimeShape, encode_upload_declaration};
use calls::{
    account_value, build_upload_declaration, bytes, hash_value, map_dispatch, value_accounts,
    value_bytes, value_u64, value_variant_name,
};

/// Options of [`CessChain::connect`].
#[derive(Clone, Debug)]
pub struct CessOptions {
    /// Wait until the block with the transaction is finalized (when the node reports finality);
    /// otherwise return as soon as it is in a best block. Default: true.
    pub wait_for_finality: bool,
    /// Longest wait for one transaction, from submission to inclusion/finality. Default: 120 s.
    pub tx_timeout: Duration,
    /// Longest wait for one read or for (re)connecting. Default: 30 s.
    pub request_timeout: Duration,
}

impl Default for CessOptions {
    fn default() -> Self {
        CessOptions {
            wait_for_finality: true,
            tx_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
        }
    }
}

fn client_err(context: impl Into<String>, retryable: bool, e: impl Into<BoxError>) -> Error {
    Error::Client {
        context: context.into(),
        retryable,
        source: e.into(),
    }
}

/// Whether a refusal by the transaction pool may pass later. Nonce races, fees (the account may be
/// funded), a full block or pool, or an expired mortality window: yes. A bad signature or a call
/// the runtime rejects outright: no. A failure without "invalid" in it is a transport failure:
/// yes.
fn pool_refusal_is_retryable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    if !m.contains("invalid") {
        return true;
    }
    [
        "stale", "future", "payment", "exhaust", "priority", "ancient", "temporar",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// One connection to a node and the runtime shape read through it.
struct Conn {
    client: OnlineClient<SubstrateConfig>,
    shape: RuntimeShape,
}

async fn open_conn(url: &str) -> Result<Conn> {
    let unavailable = |e: BoxError| Error::Unavailable {
        endpoint: url.to_string(),
        source: e,
    };
    let rpc = subxt::rpcs::RpcClient::from_insecure_url(url)
        .await
        .map_err(|e| unavailable(e.into()))?;
    let backend = LegacyBackend::<SubstrateConfig>::builder().build(rpc);
    let client = OnlineClient::from_backend_with_config(SubstrateConfig::new(), Arc::new(backend))
        .await
        .map_err(|e| unavailable(e.into()))?;
    let at = client
        .at_current_block()
        .await
        .map_err(|e| unavailable(e.into()))?;
    let shape = RuntimeShape::from_metadata(&at.metadata(), at.spec_version())?;
    for (pallet, call) in [
        ("Oss", "register"),
        ("Oss", "update"),
        ("FileBank", "delete_file"),
        ("StorageHandler", "mint_territory"),
    ] {
        if at
            .metadata()
            .pallet_by_name(pallet)
            .and_then(|p| p.call_variant_by_name(call))
            .is_none()
        {
            return Err(Error::metadata(format!(
                "{pallet}.{call} not in the runtime"
            )));
        }
    }
    Ok(Conn { client, shape })
}

/// The CESS runtime over WebSocket (see the module docs).
///
/// When the connection breaks (node restarted, network down), the next call reconnects; calls
/// fail with a retryable [`Error::Unavailable`] until the node answers again.
pub struct CessChain {
    conn: tokio::sync::RwLock<Arc<Conn>>,
    key: GatewayKey,
    url: String,
    options: CessOptions,
    submit_lock: tokio::sync::Mutex<()>,
    known_buckets: Mutex<HashSet<(AccountId, String)>>,
}

impl std::fmt::Debug for CessChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CessChain")
            .field("url", &self.url)
            .field("gateway", &self.key.account())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl CessChain {
    /// Connects to the node at `url` (`ws://` or `wss://`), reads its runtime metadata and checks
    /// that the calls this crate uses exist.
    pub async fn connect(url: &str, key: GatewayKey, options: CessOptions) -> Result<Self> {
        let conn = tokio::time::timeout(options.request_timeout, open_conn(url))
            .await
            .map_err(|_| Error::Unavailable {
                endpoint: url.to_string(),
                source: "connection timed out".into(),
            })??;
        tracing::info!(url, spec_version = conn.shape.spec_version,
            has_buckets = conn.shape.has_buckets, gateway = %key.account(),
            "connected to CESS node");
        Ok(CessChain {
            conn: tokio::sync::RwLock::new(Arc::new(conn)),
            key,
            url: url.to_string(),
            options,
            submit_lock: tokio::sync::Mutex::new(()),
            known_buckets: Mutex::new(HashSet::new()),
        })
    }

    /// The runtime shape of the current connection.
    pub async fn shape(&self) -> RuntimeShape {
        self.conn.read().await.shape.clone()
    }

    /// The node URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn unavailable(&self, e: impl Into<BoxError>) -> Error {
        Error::Unavailable {
            endpoint: self.url.clone(),
            source: e.into(),
        }
    }

    async fn timed<F: std::future::Future>(&self, what: &str, f: F) -> Result<F::Output> {
        tokio::time::timeout(self.options.request_timeout, f)
            .await
            .map_err(|_| self.unavailable(format!("{what} timed out")))
    }

    /// A client at the latest block, reconnecting once when the connection is broken.
    async fn at(&self) -> Result<(subxt::OnlineClientAtBlock<SubstrateConfig>, Arc<Conn>)> {
        let conn = self.conn.read().await.clone();
        if let Ok(Ok(at)) = self
            .timed("latest block", conn.client.at_current_block())
            .await
        {
            return Ok((at, conn));
        }
        tracing::warn!(url = %self.url, "CESS node not answering; reconnecting");
        let fresh = Arc::new(self.timed("reconnect", open_conn(&self.url)).await??);
        *self.conn.write().await = fresh.clone();
        let at = self
            .timed("latest block", fresh.client.at_current_block())
            .await?
            .map_err(|e| self.unavailable(e))?;
        tracing::info!(url = %self.url, spec_version = fresh.shape.spec_version, "reconnected");
        Ok((at, fresh))
    }

    /// Reads a storage entry at the best block as a dynamic value; `None` when absent.
    async fn fetch(
        &self,
        pallet: &str,
        entry: &str,
        keys: Vec<Value>,
    ) -> Result<Option<subxt::ext::scale_value::Value<()>>> {
        let (at, _) = self.at().await?;
        let addr = subxt::dynamic::storage::<Vec<Value>, Value>(pallet, entry);
        let what = format!("fetch {pallet}.{entry}");
        let value = self
            .timed(&what, at.storage().try_fetch(addr, keys))
            .await?
            .map_err(|e| client_err(what.clone(), true, e))?;
        match value {
            None => Ok(None),
            Some(v) => {
                let decoded = v
                    .decode_as::<Value>()
                    .map_err(|e| client_err(format!("decode {pallet}.{entry}"), false, e))?;
                // OptionQuery entries decode to `None`/`Some(x)` when the default is used.
                match &decoded.value {
                    ValueDef::Variant(var) if var.name == "None" => Ok(None),
                    _ => Ok(Some(decoded)),
                }
            }
        }
    }

    /// Signs `pallet.call(args)` with `signer`, submits it and waits for inclusion (and finality
    /// when configured). Dispatch errors are mapped to this crate's variants.
    pub(crate) async fn submit_as(
        &self,
        signer: &GatewayKey,
        pallet: &str,
        call: &str,
        args: Vec<Value>,
    ) -> Result<TxReceipt> {
        let name = format!("{pallet}.{call}");
        let _one_at_a_time = self.submit_lock.lock().await;
        let payload = subxt::dynamic::tx(pallet, call, args);
        let (at, _) = self.at().await?;
        at.transactions()
            .validate(&payload)
            .map_err(|e| client_err(format!("build {name}"), false, e))?;
        let progress = at
            .transactions()
            .sign_and_submit_then_watch_default(&payload, signer.keypair())
            .await
            .map_err(|e| {
                let reason = e.to_string();
                Error::NotIncluded {
                    call: name.clone(),
                    retryable: pool_refusal_is_retryable(&reason),
                    reason,
                }
            })?;
        let wait = self.wait(progress, &name);
        match tokio::time::timeout(self.options.tx_timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(Error::NotIncluded {
                call: name,
                reason: format!("no block within {:?}", self.options.tx_timeout),
                retryable: true,
            }),
        }
    }

    async fn wait<C>(
        &self,
        mut progress: subxt::tx::TransactionProgress<SubstrateConfig, C>,
        name: &str,
    ) -> Result<TxReceipt>
    where
        C: subxt::client::OnlineClientAtBlockT<SubstrateConfig>,
    {
        let not_included = |reason: String, retryable: bool| Error::NotIncluded {
            call: name.to_string(),
            reason,
            retryable,
        };
        let mut in_block = None;
        let mut finalized = false;
        while let Some(status) = progress.next().await {
            let status = status.map_err(|e| not_included(e.to_string(), true))?;
            match status {
                TransactionStatus::InBestBlock(b) => {
                    in_block = Some(b);
                    if !self.options.wait_for_finality {
                        break;
                    }
                }
                TransactionStatus::InFinalizedBlock(b) => {
                    in_block = Some(b);
                    finalized = true;
                    break;
                }
                TransactionStatus::Invalid { message } => {
                    let retryable = pool_refusal_is_retryable(&format!("invalid {message}"));
                    return Err(not_included(format!("invalid: {message}"), retryable));
                }
                TransactionStatus::Dropped { message } => {
                    return Err(not_included(format!("dropped: {message}"), true));
                }
                TransactionStatus::Error { message } => {
                    return Err(not_included(format!("error: {message}"), true));
                }
                _ => {}
            }
        }
        // A stream that ends after InBestBlock (no finality on this node) still counts.
        let block = in_block.ok_or_else(|| not_included("status stream ended".into(), true))?;
        let block_hash = format!("0x{}", hex::encode(block.block_hash().as_ref()));
        match block.wait_for_success().await {
            Ok(_events) => {}
            Err(TransactionEventsError::ExtrinsicFailed(dispatch)) => {
                return Err(map_dispatch(name, &dispatch));
            }
            Err(e) => return Err(client_err(format!("events of {name}"), true, e)),
        }
        let block_number = block
            .at()
            .await
            .map_err(|e| client_err(format!("block of {name}"), true, e))?
            .block_number();
        tracing::debug!(call = name, block_number, finalized, "transaction included");
        Ok(TxReceipt {
            block_number,
            block_hash,
            finalized,
        })
    }

    async fn submit(&self, pallet: &str, call: &str, args: Vec<Value>) -> Result<TxReceipt> {
        self.submit_as(&self.key, pallet, call, args).await
    }

    /// `Oss.authorize(operator)` signed by `owner_key`: for tests and tools that hold an owner's
    /// key (a gateway never does).
    pub async fn authorize_as(
        &self,
        owner_key: &GatewayKey,
        operator: &AccountId,
    ) -> Result<TxReceipt> {
        self.submit_as(owner_key, "Oss", "authorize", vec![account_value(operator)])
            .await
    }

    /// `StorageHandler.mint_territory(gib, name, days)` signed by `owner_key` (the owner pays).
    pub async fn mint_territory_as(
        &self,
        owner_key: &GatewayKey,
        name: &str,
        gib: u32,
        days: u32,
    ) -> Result<TxReceipt> {
        let args = self.mint_args(name, gib, days).await?;
        self.submit_as(owner_key, "StorageHandler", "mint_territory", args)
            .await
    }

    async fn mint_args(&self, name: &str, gib: u32, days: u32) -> Result<Vec<Value>> {
        let metadata = self.at().await?.0.metadata();
        let call = metadata
            .pallet_by_name("StorageHandler")
            .and_then(|p| p.call_variant_by_name("mint_territory"))
            .ok_or_else(|| Error::metadata("StorageHandler.mint_territory not in the runtime"))?;
        // Fill by argument name so the order in the runtime does not matter.
        call.fields
            .iter()
            .map(|f| match f.name.as_deref() {
                Some("gib_count") => Ok(Value::u128(u128::from(gib))),
                Some("territory_name") => Ok(bytes(name.as_bytes())),
                Some("days") => Ok(Value::u128(u128::from(days))),
                other => Err(Error::metadata(format!(
                    "mint_territory has an unknown argument {other:?}"
                ))),
            })
            .collect()
    }

    /// `FileBank.create_bucket(owner, name)` (runtimes with buckets only), signed by the gateway.
    pub async fn create_bucket(&self, owner: &AccountId, name: &str) -> Result<TxReceipt> {
        self.submit(
            "FileBank",
            "create_bucket",
            vec![account_value(owner), bytes(name.as_bytes())],
        )
        .await
    }

    async fn ensure_bucket(&self, owner: &AccountId, name: &str) -> Result<()> {
        let key = (*owner, name.to_string());
        if self
            .known_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let exists = self
            .fetch(
                "FileBank",
                "Bucket",
                vec![account_value(owner), bytes(name.as_bytes())],
            )
            .await?
            .is_some();
        if !exists {
            match self.create_bucket(owner, name).await {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.known_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        Ok(())
    }

    /// One attempt of [`Chain::declare_upload`].
    async fn declare_once(&self, request: &DeclarationRequest) -> Result<TxReceipt> {
        let shape = self.conn.read().await.shape.clone();
        let args = build_upload_declaration(&shape, request)?;
        // The runtime answers an existing deal/file with a generic error; say it clearly.
        match self.order_state(&request.fid).await? {
            OrderState::Absent => {}
            state => {
                return Err(Error::AlreadyExists {
                    what: format!("order {} ({})", request.fid, state.as_str()),
                });
            }
        }
        let result = async {
            if shape.has_buckets {
                self.ensure_bucket(&request.owner, &request.bucket_name)
                    .await?;
            }
            self.submit("FileBank", "upload_declaration", args).await
        }
        .await;
        // Dispatch errors carry no context; name the owner and territory of this request.
        result.map_err(|e| match e {
            Error::NotAuthorized { .. } => Error::NotAuthorized {
                owner: request.owner.to_string(),
                gateway: self.key.account().to_string(),
            },
            Error::InsufficientSpace { .. } => Error::InsufficientSpace {
                territory: request.territory.clone(),
                needed: request.locked_space(),
                remaining: 0,
            },
            Error::TerritoryNotFound { .. } => Error::TerritoryNotFound {
                owner: request.owner.to_string(),
                territory: request.territory.clone(),
            },
            Error::TerritoryUnusable { reason, .. } => Error::TerritoryUnusable {
                territory: request.territory.clone(),
                reason,
            },
            other => other,
        })
    }
}

#[async_trait]
impl Chain for CessChain {
    fn kind(&self) -> &'static str {
        "cess"
    }

    fn gateway_account(&self) -> AccountId {
        self.key.account()
    }

    async fn best_block(&self) -> Result<u64> {
        Ok(self.at().await?.0.block_number())
    }

    async fn register_gateway(&self, info: &GatewayInfo) -> Result<Registration> {
        let me = self.key.account();
        let args = vec![bytes(&info.endpoint), bytes(info.domain.as_bytes())];
        match self.gateway_info(&me).await? {
            Some(current) if current == *info => Ok(Registration::Unchanged),
            Some(_) => Ok(Registration::Updated(
                self.submit("Oss", "update", args).await?,
            )),
            None => Ok(Registration::Registered(
                self.submit("Oss", "register", args).await?,
            )),
        }
    }

    async fn gateway_info(&self, account: &AccountId) -> Result<Option<GatewayInfo>> {
        let Some(v) = self
            .fetch("Oss", "Oss", vec![account_value(account)])
            .await?
        else {
            return Ok(None);
        };
        let endpoint = v
            .at("peer_id")
            .or_else(|| v.at("endpoint"))
            .and_then(value_bytes)
            .and_then(|b| <[u8; 38]>::try_from(b).ok())
            .ok_or_else(|| Error::metadata("Oss.Oss value has no 38-byte peer_id"))?;
        let domain = v
            .at("domain")
            .and_then(value_bytes)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Ok(Some(GatewayInfo { endpoint, domain }))
    }

    async fn is_authorized(&self, owner: &AccountId) -> Result<bool> {
        let me = self.key.account();
        if *owner == me {
            return Ok(true);
        }
        let list = self
            .fetch("Oss", "AuthorityList", vec![account_value(owner)])
            .await?;
        Ok(list.is_some_and(|v| value_accounts(&v).contains(&me)))
    }

    async fn territory(&self, owner: &AccountId, name: &str) -> Result<Option<Territory>> {
        let Some(v) = self
            .fetch(
                "StorageHandler",
                "Territory",
                vec![account_value(owner), bytes(name.as_bytes())],
            )
            .await?
        else {
            return Ok(None);
        };
        let field = |f: &str| {
            value_u64(v.at(f)).ok_or_else(|| {
                Error::metadata(format!("StorageHandler.Territory value has no {f}"))
            })
        };
        Ok(Some(Territory {
            name: name.to_string(),
            total_space: field("total_space")?,
            used_space: field("used_space")?,
            locked_space: field("locked_space")?,
            remaining_space: field("remaining_space")?,
            deadline: field("deadline")?,
            state: TerritoryState::from_name(
                &value_variant_name(v.at("state")).unwrap_or_else(|| "Unknown".into()),
            ),
        }))
    }

    async fn declare_upload(&self, request: &DeclarationRequest) -> Result<TxReceipt> {
        // A transaction the pool drops or refuses for a passing reason is sent once more right
        // away. Safe: each attempt starts by reading the order and the bucket, so one that did
        // land is reported as `AlreadyExists`, never declared twice.
        match self.declare_once(request).await {
            Err(Error::NotIncluded {
                retryable: true,
                reason,
                ..
            }) => {
                tracing::warn!(fid = %request.fid, %reason, "declaration not included; sending again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.declare_once(request).await
            }
            other => other,
        }
    }

    async fn delete_file(&self, owner: &AccountId, fid: &Fid) -> Result<TxReceipt> {
        self.submit(
            "FileBank",
            "delete_file",
            vec![account_value(owner), hash_value(fid)],
        )
        .await
        .map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: format!("file {fid} of {owner}"),
            },
            other => other,
        })
    }

    async fn order_state(&self, fid: &Fid) -> Result<OrderState> {
        if self
            .fetch("FileBank", "File", vec![hash_value(fid)])
            .await?
            .is_some()
        {
            return Ok(OrderState::Stored);
        }
        if self
            .fetch("FileBank", "DealMap", vec![hash_value(fid)])
            .await?
            .is_some()
        {
            return Ok(OrderState::Declared);
        }
        Ok(OrderState::Absent)
    }
}

#[cfg(test)]
mod tests {
    use super::pool_refusal_is_retryable;

    #[test]
    fn pool_refusals_are_classified() {
        assert!(pool_refusal_is_retryable("connection reset by peer"));
        assert!(pool_refusal_is_retryable(
            "Invalid Transaction: Transaction is outdated (Stale)"
        ));
        assert!(pool_refusal_is_retryable(
            "Invalid Transaction: Inability to pay some fees (e.g. account balance too low) Payment"
        ));
        assert!(!pool_refusal_is_retryable(
            "Invalid Transaction: Transaction has a bad signature (BadProof)"
        ));
    }
}
