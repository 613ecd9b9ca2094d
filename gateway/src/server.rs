//! Starting the gateway: open everything the config names, then serve S3 (and the HTTP routes
//! that are not S3) on a listener until shutdown, draining requests in flight.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::error_handling::HandleError;
use axum::middleware;
use axum::routing::get;
use axum::serve::ListenerExt;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::admin::{self, AdminError, NewKey};
use crate::catalogue::{Backend, Catalogue, CatalogueError};
use crate::config::{Config, ConfigError};
use crate::crypto::{CryptoError, MasterKey, random_array, write_private_file};
use crate::object::{self, ObjectService, ServiceConfig};
use crate::s3::DeossS3;
use crate::s3::auth::{KeyDirectory, SignedOnly};
use crate::s3::front;
use crate::settlement::{RetryConfig, Settlement, SettlementConfig};
use deoss_chain_client::{
    Backend as ChainBackend, CessOptions, Chain, DevLedgerOptions, GatewayInfo, GatewayKey,
};

mod stores;

pub use stores::StoreDirError;

/// Name of the user that owns the root credentials.
pub const ROOT_USER: &str = "root";
/// Where generated root credentials are written (mode 0600).
pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials";
/// Path prefix of the gateway's own HTTP routes; no bucket name can start with '-'.
pub const ROUTE_PREFIX: &str = "/-";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the catalogue: {0}")]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    StoreDir(#[from] StoreDirError),
    #[error("cannot set up the root user: {0}")]
    Admin(#[from] AdminError),
    #[error("cannot start the object service: {0}")]
    Service(#[from] object::Error),
    #[error("listener failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("settlement chain: {0}")]
    Chain(#[from] deoss_chain_client::Error),
}

/// Everything a running gateway holds.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub config: Config,
    pub service: ObjectService,
    pub keys: KeyDirectory,
    pub settlement: Arc<Settlement>,
}

/// Opens the catalogue and master key as `config` says (what `deoss admin` needs too).
pub async fn open_catalogue(config: &Config) -> Result<(Catalogue, MasterKey), StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let master = MasterKey::load_or_create(&config.master_key_path())?;
    let catalogue = Catalogue::open(&config.database_url()).await?;
    Ok((catalogue, master))
}

impl Gateway {
    /// Opens the gateway's state and collects what interrupted writes left behind.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        let started = SystemTime::now();
        let (catalogue, master) = open_catalogue(&config).await?;
        ensure_root(&catalogue, &master, &config).await?;
        // Stores by the ids in their id files, never by position: the sweep below lists exactly
        // these, so a directory that cannot be told apart from another store stops the start
        // before it.
        let stores = stores::open_stores(&catalogue, &config.store_dirs()).await?;
        let service_config = ServiceConfig {
            default_profile: config.erasure.default_profile.clone(),
            inline_threshold: config.limits.inline_threshold,
            storage_classes: config.erasure.storage_classes.clone(),
            max_segments_in_flight: config.limits.max_segments_in_flight,
            upload_buffer_bytes: config.limits.upload_buffer_mib.saturating_mul(1024 * 1024),
            read_buffer_bytes: config.limits.read_buffer_mib.saturating_mul(1024 * 1024),
            gc_grace: Duration::from_secs(config.gc.grace_secs),
            gc_read_grace: Duration::from_secs(config.gc.read_grace_secs.unwrap_or(
                match catalogue.backend() {
                    Backend::Sqlite => 0,
                    Backend::Postgres => 300,
                },
            )),
            abandoned_upload_after: Duration::from_secs(config.gc.abandoned_upload_secs),
            fragment_read_timeout: Duration::from_millis(config.limits.fragment_read_timeout_ms),
            fragment_write_timeout: Duration::from_millis(config.limits.fragment_write_timeout_ms),
        };
        let service =
            ObjectService::new(catalogue.clone(), stores, master.clone(), service_config)?;
        // With SQLite the catalogue is this process's alone, so every unreferenced fragment older
        // than this start is an orphan of a write that died with a previous run.
        let cutoff = match catalogue.backend() {
            Backend::Sqlite => started,
            Backend::Postgres => started - Duration::from_secs(config.gc.grace_secs),
        };
        let swept = service.sweep_orphans(cutoff).await?;
        let drained = service.drain_gc_queue().await?;
        if swept.deleted + drained.deleted > 0 {
            tracing::info!(
                orphans = swept.deleted,
                queued = drained.deleted,
                "collected unreferenced fragments at start"
            );
        }
        let chain = open_chain(&config).await?;
        let settlement = Arc::new(Settlement::new(
            chain,
            catalogue.clone(),
            settlement_config(&config),
        ));
        service.attach_settlement(settlement.clone());
        let keys = KeyDirectory::new(catalogue, master);
        Ok(Self {
            config,
            service,
            keys,
            settlement,
        })
    }

    /// The HTTP application: the gateway's own routes under `/-/`, S3 for everything else.
    pub fn router(&self) -> Router {
        let mut builder = S3ServiceBuilder::new(DeossS3::new(
            self.service.clone(),
            self.keys.clone(),
            self.config.region.clone(),
        ));
        builder.set_auth(self.keys.clone());
        builder.set_access(SignedOnly);
        let s3 = HandleError::new(builder.build(), front::s3s_failure);
        Router::new()
            .route(&format!("{ROUTE_PREFIX}/health"), get(|| async { "ok" }))
            .fallback_service(s3)
            .layer(middleware::from_fn(front::fill_error_messages))
            .layer(middleware::from_fn(front::refuse_form_uploads))
            .layer(middleware::from_fn(front::refuse_sigv2))
            .layer(middleware::from_fn_with_state(
                self.config.region.clone(),
                front::refuse_foreign_scope,
            ))
    }
}

fn settlement_config(config: &Config) -> SettlementConfig {
    let c = &config.chain;
    SettlementConfig {
        default_territory: c.default_territory.clone(),
        dev_territory_gib: c.dev_territory_gib,
        dev_territory_days: c.dev_territory_days,
        check_cache: Duration::from_millis(c.check_cache_ms),
        stale_check: Duration::from_secs(c.stale_check_secs),
        retry: RetryConfig {
            initial: Duration::from_millis(c.retry_initial_ms),
            max: Duration::from_millis(c.retry_max_ms),
            multiplier: 2,
        },
    }
}

/// Loads the gateway's chain key; on the dev ledger, generates it (mode 0600) on first start.
pub fn chain_key(config: &Config) -> Result<GatewayKey, StartError> {
    let path = config.chain_key_path();
    if config.chain.backend == "dev" && config.chain.key_file.is_none() && !path.exists() {
        let seed = format!("0x{}\n", hex::encode(random_array::<32>()));
        write_private_file(&path, seed.as_bytes()).map_err(|source| StartError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        tracing::info!(path = %path.display(), "generated the gateway's dev chain key");
    }
    Ok(GatewayKey::from_file(&path)?)
}

/// Opens the configured chain and registers the gateway on it (`Oss.register`, or `Oss.update`
/// when its details changed).
async fn open_chain(config: &Config) -> Result<Arc<dyn Chain>, StartError> {
    let key = chain_key(config)?;
    let backend = match config.chain.backend.as_str() {
        "cess" => ChainBackend::Cess {
            url: config.chain.url.clone().unwrap_or_default(),
            options: CessOptions {
                request_timeout: Duration::from_secs(config.chain.request_timeout_secs),
                tx_timeout: Duration::from_secs(config.chain.tx_timeout_secs),
                ..CessOptions::default()
            },
        },
        _ => ChainBackend::Dev {
            dir: config.chain_dir(),
            options: DevLedgerOptions::default(),
        },
    };
    let chain = deoss_chain_client::open(&backend, key).await?;
    let domain = config
        .chain
        .domain
        .clone()
        .unwrap_or_else(|| config.listen.clone());
    let info = GatewayInfo::for_account(&chain.gateway_account(), domain)?;
    match chain.register_gateway(&info).await {
        Ok(r) => tracing::info!(chain = chain.kind(), account = %chain.gateway_account(),
            registration = ?r, "gateway registered on chain"),
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, "gateway registration will wait: chain unreachable")
        }
        Err(e) => return Err(e.into()),
    }
    Ok(chain)
}

/// Makes sure the root user has credentials: the configured ones, or generated ones written
/// once to `<data_dir>/root-credentials` and printed.
async fn ensure_root(
    cat: &Catalogue,
    master: &MasterKey,
    config: &Config,
) -> Result<(), StartError> {
    let root = match cat.user_by_name(ROOT_USER).await? {
        Some(u) => u,
        None => cat
            .create_user(ROOT_USER)
            .await?
            .ok_or_else(|| AdminError::UserExists(ROOT_USER.into()))?,
    };
    if let (Some(ak), Some(sk)) = (&config.root_access_key, config.root_secret()?) {
        match cat.access_key(ak).await? {
            Some(existing) if existing.user_id == root.id => {
                let current = master.open_secret(
                    &crate::s3::auth::secret_context(ak),
                    &existing.secret_sealed,
                )?;
                if current != sk.as_bytes() {
                    cat.delete_key(ak).await?;
                    admin::add_key(
                        cat,
                        master,
                        &root.id,
                        &NewKey {
                            access_key: ak.clone(),
                            secret_key: sk,
                        },
                    )
                    .await?;
                }
            }
            Some(_) => {
                return Err(AdminError::UserExists(format!(
                    "access key {ak} belongs to another user"
                ))
                .into());
            }
            None => {
                admin::add_key(
                    cat,
                    master,
                    &root.id,
                    &NewKey {
                        access_key: ak.clone(),
                        secret_key: sk,
                    },
                )
                .await?
            }
        }
        return Ok(());
    }
    if !cat.list_keys(&root.id).await?.is_empty() {
        return Ok(());
    }
    let key = admin::generate_key();
    admin::add_key(cat, master, &root.id, &key).await?;
    let path = config.data_dir.join(ROOT_CREDENTIALS_FILE);
    let text = format!(
        "access_key = \"{}\"\nsecret_key = \"{}\"\n",
        key.access_key, key.secret_key
    );
    write_private_file(&path, text.as_bytes()).map_err(|source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    print_root_credentials(&key, &path);
    Ok(())
}

fn print_root_credentials(key: &NewKey, path: &Path) {
    println!(
        "Generated root credentials (shown once; also kept in {}):",
        path.display()
    );
    println!("  AWS_ACCESS_KEY_ID={}", key.access_key);
    println!("  AWS_SECRET_ACCESS_KEY={}", key.secret_key);
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then drains requests in flight and
/// stops the background workers.
pub async fn serve(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let gc = {
        let svc = gateway.service.clone();
        let interval = Duration::from_secs(gateway.config.gc.interval_secs.max(1));
        let sweep = Duration::from_secs(gateway.config.gc.sweep_interval_secs.max(1));
        tokio::spawn(async move { svc.run_gc(interval, sweep, stop_rx).await })
    };
    let settler = {
        let s = gateway.settlement.clone();
        let stop = stop_tx.subscribe();
        tokio::spawn(async move { s.run_worker(stop).await })
    };
    let app = gateway.router();
    // Without TCP_NODELAY a small response's body waits behind its headers for the client's
    // delayed ACK: measured ~43 ms per small GET.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = stop_tx.send(true);
    let _ = gc.await;
    let _ = settler.await;
    gateway.service.close().await;
    Ok(())
}

/// Opens the gateway for `config` and serves it on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let data_dir: PathBuf = config.data_dir.clone();
    let gateway = Gateway::open(config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), catalogue = gateway.service.catalogue_backend().as_str(),
        stores = gateway.service.store_count(), "deoss is serving S3");
    serve(gateway, listener, shutdown).await
}
