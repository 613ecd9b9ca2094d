//! The gateway's configuration: one serde tree. Precedence: built-in defaults < TOML file
//! (`--config` / `DEOSS_CONFIG`) < `DEOSS_*` environment < command-line flags (the last two are
//! applied by the binary through [`Overrides`]). Secrets may be given as files (`*_file`).
//! [`Config::validate`] names the field at fault.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::erasure::Profile;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// Everything `deoss serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the S3 and HTTP listener.
    pub listen: String,
    /// Where the catalogue (SQLite), the local fragment stores and the master key live.
    pub data_dir: PathBuf,
    /// Catalogue URL: `sqlite://PATH` or `postgres://...`. Default: SQLite in the data directory.
    pub database_url: Option<String>,
    /// Region reported to clients (and expected in SigV4 scopes).
    pub region: String,
    /// File holding the 256-bit master key (hex); created with mode 0600 on first start.
    /// Default: `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Root user's access key; generated on first start when unset.
    pub root_access_key: Option<String>,
    /// Root user's secret key (prefer `root_secret_key_file`).
    pub root_secret_key: Option<String>,
    /// File holding the root user's secret key.
    pub root_secret_key_file: Option<PathBuf>,
    pub stores: StoresConfig,
    pub erasure: ErasureConfig,
    pub limits: LimitsConfig,
    pub gc: GcConfig,
    pub chain: ChainConfig,
}

/// Settlement of storage orders on chain (`[chain]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// `dev`: the embedded development ledger in `<data_dir>/chain/` (not consensus; users without
    /// an account get a dev account, authorization and a territory automatically). `cess`: a CESS
    /// node at `url`, signing with the key in `key_file`.
    pub backend: String,
    /// WebSocket URL of the CESS node (`ws://` or `wss://`); required with `cess`.
    pub url: Option<String>,
    /// File holding the gateway's sr25519 secret (hex seed, mnemonic or secret URI). Required with
    /// `cess`; with `dev` it defaults to `<data_dir>/chain/gateway.key`, generated (mode 0600) on
    /// first start.
    pub key_file: Option<PathBuf>,
    /// Domain the gateway registers on chain (`Oss.register`), at most 50 bytes. Default: the
    /// listen address.
    pub domain: Option<String>,
    /// Territory used when neither the bucket (`x-deoss-territory`) nor the user names one.
    pub default_territory: String,
    /// Dev ledger only: size in GiB of the territory minted for a dev account.
    pub dev_territory_gib: u32,
    /// Dev ledger only: lifetime in days of that territory.
    pub dev_territory_days: u32,
    /// Milliseconds an upload check (authorization, territory) is reused.
    pub check_cache_ms: u64,
    /// Seconds a check may be reused while the chain is unreachable; past that, uploads get 503.
    pub stale_check_secs: u64,
    /// First retry delay of an outbox row, in milliseconds (doubling on each failure).
    pub retry_initial_ms: u64,
    /// Longest retry delay of an outbox row, in milliseconds.
    pub retry_max_ms: u64,
    /// CESS only: seconds a read (or a reconnection) may take before the node counts as down.
    pub request_timeout_secs: u64,
    /// CESS only: seconds a transaction may take to be included (and finalized).
    pub tx_timeout_secs: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            backend: "dev".into(),
            url: None,
            key_file: None,
            domain: None,
            default_territory: "deoss".into(),
            dev_territory_gib: 10 * 1024,
            dev_territory_days: 365,
            check_cache_ms: 5000,
            stale_check_secs: 600,
            retry_initial_ms: 1000,
            retry_max_ms: 300_000,
            request_timeout_secs: 30,
            tx_timeout_secs: 120,
        }
    }
}

/// Local directory fragment stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoresConfig {
    /// How many stores to create under `<data_dir>/stores/` when `dirs` is empty.
    pub count: usize,
    /// Explicit store directories (one per disk, say); overrides `count`.
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErasureConfig {
    /// Profile of buckets created without `x-deoss-profile`: `cess`, `4+2`, `10+4` or `k+m`.
    pub default_profile: String,
    /// `x-amz-storage-class` -> profile. STANDARD always means the bucket's own profile.
    pub storage_classes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Objects and parts smaller than this many bytes are kept inline in the catalogue.
    pub inline_threshold: usize,
    /// Segments encoded or written at once across all uploads (each up to k+m fragments).
    pub max_segments_in_flight: usize,
    /// MiB of segment and parity buffers all uploads may hold together; an upload that finds no
    /// room reads no more of its body until some is free. Half is for segments, half for parity.
    pub upload_buffer_mib: usize,
    /// MiB of fragment bytes being read, opened and queued for clients, over all reads together;
    /// a read that finds no room waits until some is given back.
    pub read_buffer_mib: usize,
    /// Milliseconds a fragment read may take before the segment is rebuilt from other fragments.
    pub fragment_read_timeout_ms: u64,
    /// Milliseconds a fragment write may take before the store is taken as failed: the fragment
    /// goes to a spare store, or, with none left, the upload fails (503) and lets go of its
    /// memory.
    pub fragment_write_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Seconds between drains of the collection queue.
    pub interval_secs: u64,
    /// Seconds between sweeps for orphan fragments.
    pub sweep_interval_secs: u64,
    /// Unreferenced fragments younger than this are left to writes that may still be in progress.
    pub grace_secs: u64,
    /// Multipart uploads older than this are aborted and their parts collected.
    pub abandoned_upload_secs: u64,
    /// Replaced or deleted data stays this long before it is collected, for reads through other
    /// gateways sharing a PostgreSQL catalogue (this gateway's own reads hold leases instead).
    /// Unset: 0 with SQLite, 300 with PostgreSQL.
    pub read_grace_secs: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9000".into(),
            data_dir: PathBuf::from("./deoss-data"),
            database_url: None,
            region: "us-east-1".into(),
            master_key_file: None,
            root_access_key: None,
            root_secret_key: None,
            root_secret_key_file: None,
            stores: StoresConfig::default(),
            erasure: ErasureConfig::default(),
            limits: LimitsConfig::default(),
            gc: GcConfig::default(),
            chain: ChainConfig::default(),
        }
    }
}

impl Default for StoresConfig {
    fn default() -> Self {
        Self {
            count: 12,
            dirs: Vec::new(),
        }
    }
}

impl Default for ErasureConfig {
    fn default() -> Self {
        Self {
            default_profile: "cess".into(),
            storage_classes: BTreeMap::from([(
                "REDUCED_REDUNDANCY".to_string(),
                "4+2".to_string(),
            )]),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            inline_threshold: 128 * 1024,
            max_segments_in_flight: 4,
            upload_buffer_mib: 256,
            read_buffer_mib: 256,
            fragment_read_timeout_ms: 5000,
            fragment_write_timeout_ms: 30_000,
        }
    }
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            sweep_interval_secs: 3600,
            grace_secs: 24 * 3600,
            abandoned_upload_secs: 7 * 24 * 3600,
            read_grace_secs: None,
        }
    }
}

/// Values from the environment or the command line; `None` leaves the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub region: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub root_access_key: Option<String>,
    pub root_secret_key: Option<String>,
    pub root_secret_key_file: Option<PathBuf>,
    pub stores: Option<usize>,
    pub default_profile: Option<String>,
    pub chain: Option<String>,
    pub chain_url: Option<String>,
    pub chain_key_file: Option<PathBuf>,
}

/// Largest inline threshold accepted: inline data lives in catalogue rows.
const MAX_INLINE_THRESHOLD: usize = 4 * 1024 * 1024;

impl Config {
    /// Defaults, then the TOML file if given, then the overrides; validated.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    fn apply(&mut self, o: Overrides) {
        macro_rules! take {
            ($field:ident) => {
                if let Some(v) = o.$field {
                    self.$field = v;
                }
            };
            ($field:ident, opt) => {
                if o.$field.is_some() {
                    self.$field = o.$field;
                }
            };
        }
        take!(listen);
        take!(data_dir);
        take!(region);
        take!(database_url, opt);
        take!(master_key_file, opt);
        take!(root_access_key, opt);
        take!(root_secret_key, opt);
        take!(root_secret_key_file, opt);
        if let Some(n) = o.stores {
            self.stores.count = n;
        }
        if let Some(p) = o.default_profile {
            self.erasure.default_profile = p;
        }
        if let Some(c) = o.chain {
            self.chain.backend = c;
        }
        if o.chain_url.is_some() {
            self.chain.url = o.chain_url;
        }
        if o.chain_key_file.is_some() {
            self.chain.key_file = o.chain_key_file;
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "listen",
                format!("{:?} is not an address: {e}", self.listen),
            )
        })?;
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid(
                "region",
                format!("{:?} is not a region name", self.region),
            ));
        }
        if let Some(url) = &self.database_url
            && !["sqlite:", "postgres:", "postgresql:"]
                .iter()
                .any(|p| url.starts_with(p))
        {
            return Err(invalid(
                "database_url",
                "use sqlite://PATH or postgres://USER@HOST/DB",
            ));
        }
        let stores = self.store_count();
        if stores == 0 {
            return Err(invalid(
                "stores.count",
                "at least one fragment store is needed",
            ));
        }
        let profile = Profile::parse(&self.erasure.default_profile)
            .map_err(|e| invalid("erasure.default_profile", e.to_string()))?;
        if profile.total() > stores {
            return Err(invalid(
                "erasure.default_profile",
                format!(
                    "{} needs {} fragment stores but {stores} are configured",
                    profile.name,
                    profile.total()
                ),
            ));
        }
        for (class, name) in &self.erasure.storage_classes {
            Profile::parse(name)
                .map_err(|e| invalid("erasure.storage_classes", format!("{class}: {e}")))?;
        }
        if self.limits.inline_threshold > MAX_INLINE_THRESHOLD {
            return Err(invalid(
                "limits.inline_threshold",
                format!("at most {MAX_INLINE_THRESHOLD} bytes"),
            ));
        }
        if self.limits.fragment_read_timeout_ms == 0 {
            return Err(invalid(
                "limits.fragment_read_timeout_ms",
                "must be at least 1",
            ));
        }
        if self.limits.max_segments_in_flight == 0 {
            return Err(invalid(
                "limits.max_segments_in_flight",
                "must be at least 1",
            ));
        }
        if self.limits.upload_buffer_mib == 0 {
            return Err(invalid("limits.upload_buffer_mib", "must be at least 1"));
        }
        if self.limits.read_buffer_mib == 0 {
            return Err(invalid("limits.read_buffer_mib", "must be at least 1"));
        }
        if self.limits.fragment_write_timeout_ms == 0 {
            return Err(invalid(
                "limits.fragment_write_timeout_ms",
                "must be at least 1",
            ));
        }
        if self.root_access_key.is_some()
            != (self.root_secret_key.is_some() || self.root_secret_key_file.is_some())
        {
            return Err(invalid(
                "root_access_key",
                "give both the root access key and its secret key, or neither",
            ));
        }
        if let Some(ak) = &self.root_access_key
            && !(3..=128).contains(&ak.len())
        {
            return Err(invalid("root_access_key", "must be 3 to 128 characters"));
        }
        self.chain.validate()
    }

    /// Directory of the dev ledger.
    pub fn chain_dir(&self) -> PathBuf {
        self.data_dir.join("chain")
    }

    /// The gateway's chain key file: the configured one, or the dev default.
    pub fn chain_key_path(&self) -> PathBuf {
        self.chain
            .key_file
            .clone()
            .unwrap_or_else(|| self.chain_dir().join("gateway.key"))
    }

    pub fn store_count(&self) -> usize {
        if self.stores.dirs.is_empty() {
            self.stores.count
        } else {
            self.stores.dirs.len()
        }
    }

    /// The store directories, in order.
    pub fn store_dirs(&self) -> Vec<PathBuf> {
        if self.stores.dirs.is_empty() {
            (0..self.stores.count)
                .map(|i| self.data_dir.join("stores").join(format!("{i:02}")))
                .collect()
        } else {
            self.stores.dirs.clone()
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("catalogue.db").display()
            )
        })
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The configured root secret key, read from its file when given that way.
    pub fn root_secret(&self) -> Result<Option<String>, ConfigError> {
        if let Some(s) = &self.root_secret_key {
            return Ok(Some(s.clone()));
        }
        match &self.root_secret_key_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                }),
            None => Ok(None),
        }
    }
}

impl ChainConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match self.backend.as_str() {
            "dev" => {}
            "cess" => {
                let url = self.url.as_deref().unwrap_or("");
                if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                    return Err(invalid(
                        "chain.url",
                        "--chain cess needs the node's ws:// or wss:// URL (--chain-url)",
                    ));
                }
                if self.key_file.is_none() {
                    return Err(invalid(
                        "chain.key_file",
                        "--chain cess needs the gateway's key file (--chain-key-file)",
                    ));
                }
            }
            other => {
                return Err(invalid(
                    "chain.backend",
                    format!("{other:?} is not a chain: use dev or cess"),
                ));
            }
        }
        if let Some(d) = &self.domain
            && d.len() > deoss_chain_client::MAX_DOMAIN_LEN
        {
            return Err(invalid("chain.domain", "at most 50 bytes"));
        }
        if !(1..=deoss_chain_client::MAX_NAME_LEN).contains(&self.default_territory.len()) {
            return Err(invalid("chain.default_territory", "must be 1 to 63 bytes"));
        }
        if self.dev_territory_gib == 0 || self.dev_territory_days == 0 {
            return Err(invalid(
                "chain.dev_territory_gib",
                "dev territories need at least 1 GiB and 1 day",
            ));
        }
        if self.request_timeout_secs == 0 || self.tx_timeout_secs == 0 {
            return Err(invalid(
                "chain.request_timeout_secs",
                "chain timeouts must be at least 1 second",
            ));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err(invalid(
                "chain.retry_initial_ms",
                "must be at least 1 and at most chain.retry_max_ms",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, Overrides::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.store_dirs().len(), 12);
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deoss.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9100\"\nregion = \"eu-west-1\"\n[stores]\ncount = 16\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            Overrides {
                region: Some("ap-east-1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9100");
        assert_eq!(c.region, "ap-east-1");
        assert_eq!(c.store_count(), 16);
    }

    #[test]
    fn chain_section_and_overrides() {
        let c = Config::load(None, Overrides::default()).unwrap();
        assert_eq!(c.chain.backend, "dev");
        assert_eq!(
            c.chain_key_path(),
            c.data_dir.join("chain").join("gateway.key")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deoss.toml");
        std::fs::write(
            &path,
            "[chain]\nbackend = \"cess\"\nurl = \"ws://127.0.0.1:9944\"\nkey_file = \"/k\"\n\
             default_territory = \"home\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.chain.backend, "cess");
        assert_eq!(c.chain.default_territory, "home");
        assert_eq!(c.chain_key_path(), PathBuf::from("/k"));
        let c = Config::load(
            Some(&path),
            Overrides {
                chain: Some("dev".into()),
                chain_url: Some("ws://10.0.0.1:9944".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.chain.backend, "dev");
        assert_eq!(c.chain.url.as_deref(), Some("ws://10.0.0.1:9944"));
    }

    #[test]
    fn upload_memory_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deoss.toml");
        std::fs::write(&path, "[limits]\nupload_buffer_mib = 64\n").unwrap();
        let c = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.limits.upload_buffer_mib, 64);
        std::fs::write(&path, "[limits]\nupload_buffer_mib = 0\n").unwrap();
        let err = Config::load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.upload_buffer_mib"), "{err}");
    }

    #[test]
    fn read_memory_and_write_timeout_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deoss.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path), Overrides::default())
        };
        let c = load("[limits]\nread_buffer_mib = 64\nfragment_write_timeout_ms = 500\n").unwrap();
        assert_eq!(c.limits.read_buffer_mib, 64);
        assert_eq!(c.limits.fragment_write_timeout_ms, 500);
        let defaults = Config::default().limits;
        assert_eq!(
            (defaults.read_buffer_mib, defaults.fragment_write_timeout_ms),
            (256, 30_000)
        );
        for field in ["read_buffer_mib", "fragment_write_timeout_ms"] {
            let err = load(&format!("[limits]\n{field} = 0\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("limits.{field}")), "{err}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |o: Overrides| Config::load(None, o).unwrap_err().to_string();
        assert!(
            bad(Overrides {
                listen: Some("nope".into()),
                ..Default::default()
            })
            .contains("listen")
        );
        assert!(
            bad(Overrides {
                stores: Some(6),
                ..Default::default()
            })
            .contains("erasure.default_profile")
        );
        assert!(
            bad(Overrides {
                default_profile: Some("9+x".into()),
                ..Default::default()
            })
            .contains("erasure.default_profile")
        );
        let chain = bad(Overrides {
            chain: Some("cess".into()),
            ..Default::default()
        });
        assert!(chain.contains("chain.url"), "{chain}");
        let chain = bad(Overrides {
            chain: Some("cess".into()),
            chain_url: Some("ws://127.0.0.1:9944".into()),
            ..Default::default()
        });
        assert!(chain.contains("chain.key_file"), "{chain}");
        assert!(
            bad(Overrides {
                chain: Some("eth".into()),
                ..Default::default()
            })
            .contains("chain.backend")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deoss.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Config::load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }
}
