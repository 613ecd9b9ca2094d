//! End to end: the bench drives a real S3 server (the `s3s-fs` library, as `s3s-fs` the
//! binary serves it) on 127.0.0.1 port 0, through the same `run` the binary calls, with
//! tiny sizes. The server runs in this process, so `--server-pid` watches ourselves.

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use deoss_bench::BenchError;
use deoss_bench::cli::Cli;
use deoss_bench::report::{RateKind, format_table};

const ACCESS_KEY: &str = "bench-test-access";
const SECRET_KEY: &str = "bench-test-secret";

/// Serves an s3s-fs file system rooted at `root` until the test's runtime ends.
async fn start_s3s_fs(root: &Path) -> SocketAddr {
    let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                break;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let connection = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = connection
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    address
}

fn cli(address: SocketAddr, secret: &str, workload: &[&str]) -> Cli {
    let endpoint = format!("http://{address}");
    let pid = std::process::id().to_string();
    let mut args = vec![
        "deoss-bench",
        "--endpoint",
        &endpoint,
        "--access-key",
        ACCESS_KEY,
        "--secret-key",
        secret,
        "--bucket",
        "bench-it",
        "--runs",
        "2",
        "--max-seconds",
        "60",
        "--verify",
        "--server-pid",
        &pid,
    ];
    args.extend_from_slice(workload);
    Cli::try_parse_from(args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_and_reports_against_s3s_fs() {
    let root = tempfile::tempdir().unwrap();
    let address = start_s3s_fs(root.path()).await;
    let run = |workload: &'static [&'static str]| {
        let cli = cli(address, SECRET_KEY, workload);
        async move { deoss_bench::run(&cli).await.unwrap() }
    };

    let put = run(&["large-put", "--size", "3MiB", "--streams", "2"]).await;
    let multipart = run(&[
        "large-put",
        "--size",
        "12MiB",
        "--multipart",
        "--part-size",
        "5MiB",
    ])
    .await;
    let get = run(&["large-get", "--size", "3MiB", "--streams", "2"]).await;
    let degraded = run(&[
        "degraded-get",
        "--size",
        "3MiB",
        "--streams",
        "2",
        "--label",
        "none lost",
    ])
    .await;
    let ranges = run(&[
        "range-get",
        "--object-size",
        "3MiB",
        "--range-size",
        "100KiB",
        "--count",
        "20",
        "--concurrency",
        "4",
    ])
    .await;
    let small = run(&[
        "small",
        "--size",
        "4KiB",
        "--count",
        "30",
        "--concurrency",
        "8",
    ])
    .await;

    // Each run moved exactly what was asked for, and the rates follow from it.
    assert_eq!(put[0].runs.len(), 2);
    for run in &put[0].runs {
        assert_eq!((run.ops, run.bytes), (2, 2 * (3 << 20)));
    }
    assert_eq!(multipart[0].runs[0].bytes, 12 << 20);
    assert_eq!(get[0].runs[0].bytes, 2 * (3 << 20));
    assert_eq!(get[0].rate_kind, RateKind::Bytes);
    assert!(get[0].median_rate > 0.0);
    assert!(degraded[0].workload.contains("none lost"));
    assert_eq!(ranges[0].runs[0].ops, 20);
    assert_eq!(ranges[0].runs[0].bytes, 20 * 100 * 1024);
    assert!(ranges[0].p50.is_some() && ranges[0].p99 >= ranges[0].p50);

    // Small objects: PUT, GET, DELETE rows, all objects in each, and nothing left behind.
    assert_eq!(small.len(), 3);
    for row in &small {
        assert_eq!(
            row.runs.iter().map(|r| r.ops).collect::<Vec<_>>(),
            vec![30, 30]
        );
    }
    let small_dirs = std::fs::read_dir(root.path().join("bench-it/deoss-bench"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("small"))
        .map(|entry| walk_files(&entry.path()))
        .sum::<usize>();
    assert_eq!(small_dirs, 0, "DELETE phase left objects behind");

    // The server was watched, and the table shows every row.
    let usage = get[0].server.expect("--server-pid was given");
    assert!(usage.peak_rss_bytes > 0 && usage.vm_hwm_bytes > 0);
    let rows: Vec<_> = [put, multipart, get, degraded, ranges, small].concat();
    let table = format_table(&rows);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        1 + 8,
        "{table}"
    );
    assert!(
        table.contains("s/GB") && table.contains("s/1k ops"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_corrupted_bytes() {
    let root = tempfile::tempdir().unwrap();
    let address = start_s3s_fs(root.path()).await;
    let put = cli(address, SECRET_KEY, &["large-put", "--size", "1MiB"]);
    deoss_bench::run(&put).await.unwrap();

    // Flip one byte of the stored object behind the server's back.
    let stored = root
        .path()
        .join(format!("bench-it/deoss-bench/large-{}/0", 1 << 20));
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[777_777] ^= 0x40;
    std::fs::write(&stored, bytes).unwrap();

    let get = cli(address, SECRET_KEY, &["large-get", "--size", "1MiB"]);
    match deoss_bench::run(&get).await {
        Err(BenchError::Corrupt { offset, .. }) => assert_eq!(offset, 777_777),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_and_missing_degraded_objects_are_errors() {
    let root = tempfile::tempdir().unwrap();
    let address = start_s3s_fs(root.path()).await;

    let wrong = cli(address, "not-the-secret", &["small", "--count", "1"]);
    match deoss_bench::run(&wrong).await {
        Err(BenchError::Status { status, .. }) => assert_eq!(status, http::StatusCode::FORBIDDEN),
        other => panic!("expected 403, got {other:?}"),
    }

    let degraded = cli(address, SECRET_KEY, &["degraded-get", "--size", "1MiB"]);
    let error = deoss_bench::run(&degraded).await.unwrap_err();
    assert!(error.to_string().contains("run large-get"), "{error}");
}

/// The binary itself, as an operator runs it: the whole suite, table on stdout, JSON file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_the_suite_and_writes_table_and_json() {
    let root = tempfile::tempdir().unwrap();
    let address = start_s3s_fs(root.path()).await;
    let json_path = root.path().join("results.json");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_deoss-bench"))
        .args(["--endpoint", &format!("http://{address}")])
        .args([
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--bucket",
            "suite",
        ])
        .args(["--runs", "1", "--max-seconds", "60", "--verify", "--json"])
        .arg(&json_path)
        .args([
            "all",
            "--size",
            "6MiB",
            "--streams",
            "2",
            "--part-size",
            "5MiB",
        ])
        .args([
            "--count",
            "16",
            "--concurrency",
            "4",
            "--range-size",
            "64KiB",
            "--range-count",
            "8",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Header plus: put, get, multipart put, N-stream put and get, range, small x3.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 1 + 9, "{stdout}");
    assert!(
        rows[3].starts_with("| large-put, 1 stream, multipart 5 MiB parts | 6 MiB | 1 |"),
        "{stdout}"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let json_rows = json.as_array().unwrap();
    assert_eq!(json_rows.len(), 9);
    assert!(
        json_rows
            .iter()
            .all(|row| row["median_rate"].as_f64().unwrap() > 0.0)
    );
    assert_eq!(json_rows[5]["runs"][0]["ops"], 8);
}

fn walk_files(path: &Path) -> usize {
    if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .filter_map(Result::ok)
            .map(|entry| walk_files(&entry.path()))
            .sum()
    } else {
        1
    }
}
