//! The `deoss` binary: `deoss serve` runs the gateway, `deoss admin` manages users and keys,
//! `deoss chain` inspects the embedded dev ledger.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use deoss::config::{Config, Overrides};
use deoss::{admin, server, settlement};

/// mimalloc, for the many mid-sized allocations of the data path (body frames allocated on one
/// thread and freed on another): with glibc's malloc a 1 GiB upload ran ~15% slower and once
/// grew past 500 MiB in per-thread arenas. Built without transparent huge pages, which only
/// inflated RSS once the segment buffers moved to mappings of their own (object::buffers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "deoss",
    version,
    about = "S3-compatible gateway for decentralized storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (embedded defaults: SQLite catalogue, 12 local fragment stores).
    Serve(Common),
    /// Manage users, access keys and stores in the catalogue.
    Admin {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        what: AdminCommand,
    },
    /// Inspect the embedded dev ledger (`--chain dev`) in the data directory; read-only, safe
    /// while the gateway runs.
    Chain {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        what: ChainCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ChainCommand {
    /// Blocks of the dev ledger, oldest first, one JSON object per line.
    Blocks {
        /// First block number.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most blocks to print.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The storage order of a file id (64 hex), as JSON.
    Order { fid: String },
}

/// Settings shared by every subcommand; each also reads a `DEOSS_*` variable.
#[derive(Debug, Args)]
struct Common {
    /// TOML config file.
    #[arg(long, env = "DEOSS_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:9000].
    #[arg(long, env = "DEOSS_LISTEN")]
    listen: Option<String>,
    /// Data directory [default: ./deoss-data].
    #[arg(long, env = "DEOSS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Catalogue URL: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir].
    #[arg(long, env = "DEOSS_DATABASE_URL")]
    database_url: Option<String>,
    /// Region reported to clients [default: us-east-1].
    #[arg(long, env = "DEOSS_REGION")]
    region: Option<String>,
    /// Master key file [default: <data-dir>/master.key].
    #[arg(long, env = "DEOSS_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Number of local fragment stores under <data-dir>/stores [default: 12].
    #[arg(long, env = "DEOSS_STORES")]
    stores: Option<usize>,
    /// Erasure profile of new buckets: cess, 4+2, 10+4 or k+m [default: cess].
    #[arg(long, env = "DEOSS_DEFAULT_PROFILE")]
    default_profile: Option<String>,
    /// Settlement chain: dev (embedded dev ledger) or cess [default: dev].
    #[arg(long, env = "DEOSS_CHAIN")]
    chain: Option<String>,
    /// WebSocket URL of the CESS node (with --chain cess).
    #[arg(long, env = "DEOSS_CHAIN_URL")]
    chain_url: Option<String>,
    /// File with the gateway's sr25519 secret [default with dev: <data-dir>/chain/gateway.key].
    #[arg(long, env = "DEOSS_CHAIN_KEY_FILE")]
    chain_key_file: Option<PathBuf>,
}

impl Common {
    fn load(self) -> anyhow::Result<Config> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir,
            database_url: self.database_url,
            region: self.region,
            master_key_file: self.master_key_file,
            // Secrets only from the environment or files, never from flags (process lists show flags).
            root_access_key: env("DEOSS_ROOT_ACCESS_KEY"),
            root_secret_key: env("DEOSS_ROOT_SECRET_KEY"),
            root_secret_key_file: env("DEOSS_ROOT_SECRET_KEY_FILE").map(PathBuf::from),
            stores: self.stores,
            default_profile: self.default_profile,
            chain: self.chain,
            chain_url: self.chain_url,
            chain_key_file: self.chain_key_file,
        };
        Ok(Config::load(self.config.as_deref(), overrides)?)
    }
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Objects.
    #[command(subcommand)]
    Object(ObjectCommand),
    /// The settlement outbox.
    #[command(subcommand)]
    Settlement(SettlementCommand),
    /// Fragment stores.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Registered fragment stores, oldest first: id, kind, endpoint, state.
    List,
}

#[derive(Debug, Subcommand)]
enum ObjectCommand {
    /// Where an object's storage order stands: fid, state, block or reason.
    Settlement { bucket: String, key: String },
}

#[derive(Debug, Subcommand)]
enum SettlementCommand {
    /// The most recent outbox rows, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user and its first access key.
    Create {
        name: String,
        /// Chain account (SS58, any prefix; or 0x + 64 hex) the user's objects are settled for.
        /// Without it: a deterministic dev account on the dev ledger; no uploads on CESS.
        #[arg(long)]
        account: Option<String>,
        /// The account's territory to use by default (a bucket may name its own).
        #[arg(long)]
        territory: Option<String>,
    },
    /// List users.
    List,
    /// Delete a user (it must own no buckets) and its keys.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create another access key for a user.
    Create { user: String },
    /// List a user's access keys.
    List { user: String },
    /// Delete an access key.
    Delete { access_key: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DEOSS_LOG")
                // s3s logs every client error (NoSuchKey, a bad bucket name) at ERROR; the gateway
                // logs what matters itself, once, where errors are mapped.
                .unwrap_or_else(|_| "info,sqlx=warn,s3s=off".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in journald, files or pipes.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().command {
        Command::Serve(common) => serve(common.load()?).await,
        Command::Admin { common, what } => run_admin(common.load()?, what).await,
        Command::Chain { common, what } => run_chain(common.load()?, what),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let gateway = deoss::Gateway::open(config).await?;
    // Printed once the gateway is ready (after any first-start credentials), so scripts and
    // tests can wait for this line.
    println!("deoss listening on http://{addr}");
    server::serve(gateway, listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining requests in flight");
}

fn print_settlement(row: &deoss::catalogue::SettlementRecord) {
    println!("fid = {}", row.fid.as_deref().unwrap_or("-"));
    println!("owner = {}", row.owner.as_deref().unwrap_or("-"));
    println!(
        "state = {}",
        settlement::describe(row.state, row.block, row.reason.as_deref())
    );
    println!("attempts = {}", row.attempts);
}

fn run_chain(config: Config, what: ChainCommand) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.chain.backend == "dev",
        "deoss chain inspects the embedded dev ledger; this gateway uses --chain {}",
        config.chain.backend
    );
    let ledger = deoss_chain_client::DevLedger::snapshot(&config.chain_dir())
        .with_context(|| format!("no dev ledger in {}", config.chain_dir().display()))?;
    match what {
        ChainCommand::Blocks { from, limit } => {
            for block in ledger.blocks(from, limit) {
                println!("{}", serde_json::to_string(&block)?);
            }
        }
        ChainCommand::Order { fid } => {
            let fid = deoss_chain_client::Hash64::from_hex(&fid)?;
            let order = ledger
                .order(&fid)
                .with_context(|| format!("no order for fid {fid} on the dev ledger"))?;
            println!("{}", serde_json::to_string_pretty(&order)?);
        }
    }
    Ok(())
}

async fn run_admin(config: Config, what: AdminCommand) -> anyhow::Result<()> {
    let (cat, master) = server::open_catalogue(&config).await?;
    match what {
        AdminCommand::User(UserCommand::Create {
            name,
            account,
            territory,
        }) => {
            let (user, key) = admin::create_user_with(
                &cat,
                &master,
                &name,
                account.as_deref(),
                territory.as_deref(),
            )
            .await?;
            println!("created user {} (id {})", user.name, user.id);
            let account = match &user.chain_account {
                Some(a) => a.clone(),
                None => format!("{} (dev account)", settlement::dev_account(&user.name)),
            };
            println!("chain_account = {account}");
            println!(
                "access_key = {}\nsecret_key = {}",
                key.access_key, key.secret_key
            );
        }
        AdminCommand::User(UserCommand::List) => {
            for u in cat.list_users().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.name,
                    u.id,
                    u.chain_account.as_deref().unwrap_or("-"),
                    u.territory.as_deref().unwrap_or("-")
                );
            }
        }
        AdminCommand::User(UserCommand::Delete { name }) => {
            admin::delete_user(&cat, &name).await?;
            println!("deleted user {name}");
        }
        AdminCommand::Key(KeyCommand::Create { user }) => {
            let key = admin::create_key(&cat, &master, &user).await?;
            println!(
                "access_key = {}\nsecret_key = {}",
                key.access_key, key.secret_key
            );
        }
        AdminCommand::Key(KeyCommand::List { user }) => {
            for k in admin::list_keys(&cat, &user).await? {
                println!("{}", k.access_key);
            }
        }
        AdminCommand::Key(KeyCommand::Delete { access_key }) => {
            admin::delete_key(&cat, &access_key).await?;
            println!("deleted key {access_key}");
        }
        AdminCommand::Object(ObjectCommand::Settlement { bucket, key }) => {
            let object = cat
                .object(&bucket, &key)
                .await?
                .with_context(|| format!("no object {key:?} in bucket {bucket}"))?;
            match cat.settlement_of_version(&object.version_id).await? {
                Some(row) => print_settlement(&row),
                None => println!("state = none; reason=stored without settlement"),
            }
        }
        AdminCommand::Settlement(SettlementCommand::List { limit }) => {
            for row in cat.settlement_recent(limit).await? {
                println!(
                    "{}\t{}\t{}\t{}/{}\t{}",
                    row.id,
                    row.kind.as_str(),
                    row.fid.as_deref().unwrap_or("-"),
                    row.bucket,
                    row.key,
                    settlement::describe(row.state, row.block, row.reason.as_deref())
                );
            }
        }
        AdminCommand::Store(StoreCommand::List) => {
            for s in admin::list_stores(&cat).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    s.id,
                    s.kind.as_str(),
                    s.endpoint,
                    s.state.as_str()
                );
            }
        }
    }
    cat.close().await;
    Ok(())
}
