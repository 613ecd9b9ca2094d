//! Starts the real `deoss` binary on port 0 in a temporary data directory and hands out clients.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub const ROOT_AK: &str = "ROOTACCESSKEY0000001";
pub const ROOT_SK: &str = "root-secret-key-for-the-e2e-suite-000001";

pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
}

/// Name of the config file that `start_with_config` writes into the data directory.
const CONFIG_FILE: &str = "deoss.toml";

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_deoss")
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with a TOML config file (written into its data directory) and flags.
    pub fn start_with_config(toml: &str, args: &[&str]) -> Self {
        let mut server = Self::configured(toml, args);
        server.spawn();
        server
    }

    /// Runs a first start with a TOML config file that must be refused; returns its stderr.
    pub fn refused_with_config(toml: &str) -> String {
        Self::configured(toml, &[]).restart_refused()
    }

    fn configured(toml: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, toml).unwrap();
        let mut all = vec!["--config".to_string(), path.display().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        Self {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
            args: all,
        }
    }

    /// Replaces the config file of a server started with one; read at the next (re)start.
    pub fn rewrite_config(&self, toml: &str) {
        std::fs::write(self.dir.path().join(CONFIG_FILE), toml).unwrap();
    }

    /// Starts a server with extra `deoss serve` flags.
    pub fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn command(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.dir.path())
            .args(&self.args)
            .env("DEOSS_ROOT_ACCESS_KEY", ROOT_AK)
            .env("DEOSS_ROOT_SECRET_KEY", ROOT_SK)
            .env(
                "DEOSS_LOG",
                std::env::var("DEOSS_LOG").unwrap_or_else(|_| "error,s3s=off".into()),
            )
            .env_remove("DEOSS_CONFIG");
        command
    }

    /// Stops the server (kill -9) and starts it again expecting the start to be refused: the
    /// process must exit, unsuccessfully, without ever listening. Returns its stderr.
    pub fn restart_refused(&mut self) -> String {
        self.kill9();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start deoss");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (listening_tx, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if line.starts_with("deoss listening on") {
                    let _ = listening_tx.send(line);
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if let Ok(line) = listening.try_recv() {
                child.kill().ok();
                child.wait().ok();
                panic!("deoss started instead of refusing to start: {line}");
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("deoss neither started nor exited within a minute");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let text = reader.join().unwrap();
        assert!(
            !status.success(),
            "deoss exited successfully instead of refusing to start: {text}"
        );
        text
    }

    fn spawn(&mut self) {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start deoss");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("deoss exited before listening")
                .expect("read stdout");
            if let Some(rest) = line.strip_prefix("deoss listening on http://") {
                break rest.trim().parse().expect("address");
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.addr = addr;
        self.child = Some(child);
        wait_ready(addr);
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn store_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("stores"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs
    }

    pub fn client(&self) -> Client {
        self.client_for(ROOT_AK, ROOT_SK)
    }

    pub fn client_for(&self, access_key: &str, secret_key: &str) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(access_key, secret_key, None, None, "e2e"))
            .force_path_style(true)
            // A server that hangs fails the test instead of stalling the suite.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(300))
                    .build(),
            )
            .build();
        Client::from_conf(config)
    }

    /// Runs `deoss admin` against this server's data directory; returns stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(binary())
            .arg("admin")
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run deoss admin");
        assert!(
            out.status.success(),
            "deoss admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates a user; returns its (access key, secret key).
    pub fn create_user(&self, name: &str) -> (String, String) {
        let out = self.admin(&["user", "create", name]);
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim_start_matches(" = ").trim().to_string())
                .unwrap()
        };
        (field("access_key"), field("secret_key"))
    }

    /// SIGTERM, then waits (at most a minute) for the process to exit; returns its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().ok();
                panic!("deoss did not exit within a minute of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fragment files in the stores (content-addressed names only: no temp or id files).
    pub fn fragment_count(&self) -> usize {
        self.fragment_files()
            .iter()
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.len() == 64
                    && name.bytes().all(|b| b.is_ascii_hexdigit())
                    && !p.components().any(|c| c.as_os_str() == ".tmp")
            })
            .count()
    }

    /// Waits until the stores hold `n` fragment files (background GC runs on its own); fails
    /// after a generous deadline rather than hanging.
    pub async fn wait_for_fragments(&self, n: usize, why: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.fragment_count();
            if now == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{why}: {now} fragment files, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Every file under the fragment stores (temp files included), but the stores' id files.
    pub fn fragment_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out)
                } else if e.file_name() != "deoss-store.json" {
                    out.push(p)
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("stores"), &mut out);
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn wait_ready(addr: SocketAddr) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("deoss did not accept connections on {addr}");
}

/// The whole body of an object, read with the SDK.
pub async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Deterministic, incompressible test data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

/// The S3 error code of a failed SDK call.
pub fn code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{err:?}"))
}

/// The S3 error message of a failed SDK call (empty if there is none).
pub fn message<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default()
        .to_string()
}

/// The HTTP status of a failed SDK call.
pub fn status<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> u16 {
    err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// A raw HTTP/1.1 exchange (Connection: close), for requests an SDK will not make.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    RawResponse::parse(&buf)
}

impl RawResponse {
    /// Parses a whole HTTP/1.1 response (a chunked body is de-chunked).
    pub fn parse(buf: &[u8]) -> Self {
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("response head");
        let head = String::from_utf8_lossy(&buf[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        let mut body = buf[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Self {
            status,
            headers,
            body,
        }
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..eol])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}
