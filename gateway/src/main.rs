//! The `deoss` binary: `deoss serve` runs the gateway, `deoss admin` manages users and keys.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use deoss::config::{Config, Overrides};
use deoss::{admin, server};

/// mimalloc returns freed segment buffers to the system; glibc's malloc kept them in per-thread
/// arenas and a single 1 GiB upload grew the process past 500 MiB.
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
    /// Manage users and access keys in the catalogue.
    Admin {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        what: AdminCommand,
    },
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
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user and its first access key.
    Create { name: String },
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
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(common) => serve(common.load()?).await,
        Command::Admin { common, what } => run_admin(common.load()?, what).await,
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

async fn run_admin(config: Config, what: AdminCommand) -> anyhow::Result<()> {
    let (cat, master) = server::open_catalogue(&config).await?;
    match what {
        AdminCommand::User(UserCommand::Create { name }) => {
            let (user, key) = admin::create_user(&cat, &master, &name).await?;
            println!("created user {} (id {})", user.name, user.id);
            println!(
                "access_key = {}\nsecret_key = {}",
                key.access_key, key.secret_key
            );
        }
        AdminCommand::User(UserCommand::List) => {
            for u in cat.list_users().await? {
                println!("{}\t{}", u.name, u.id);
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
    }
    cat.close().await;
    Ok(())
}
