//! A scenario with the aws CLI, as a user would type it.

use std::process::Command;

use crate::harness::{ROOT_AK, ROOT_SK, Server, data};

/// An aws CLI config that signs presigned URLs with SigV4 (aws CLI v1 defaults to SigV2 there,
/// which deoss refuses).
fn cli_config() -> &'static std::path::Path {
    static CONFIG: std::sync::OnceLock<tempfile::NamedTempFile> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), "[default]\ns3 =\n    signature_version = s3v4\n").unwrap();
            f
        })
        .path()
}

fn aws(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new("aws")
        .args(args)
        .args(["--endpoint-url", &server.endpoint()])
        .env("AWS_ACCESS_KEY_ID", ROOT_AK)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SK)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", cli_config())
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the aws CLI must be installed (pip install awscli)")
}

fn ok(server: &Server, args: &[&str]) -> String {
    let out = aws(server, args);
    assert!(
        out.status.success(),
        "aws {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn aws_cli_scenario() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let small = work.path().join("hello.txt");
    std::fs::write(&small, b"hello from the aws cli\n").unwrap();
    // Large enough for the CLI to switch to multipart (its threshold is 8 MiB).
    let big = work.path().join("big.bin");
    let big_data = data(20 * 1024 * 1024 + 3, 31);
    std::fs::write(&big, &big_data).unwrap();

    ok(&server, &["s3", "mb", "s3://cli-bucket"]);
    ok(
        &server,
        &[
            "s3",
            "cp",
            small.to_str().unwrap(),
            "s3://cli-bucket/docs/hello.txt",
        ],
    );
    ok(
        &server,
        &["s3", "cp", big.to_str().unwrap(), "s3://cli-bucket/big.bin"],
    );
    let listing = ok(&server, &["s3", "ls", "s3://cli-bucket/"]);
    assert!(
        listing.contains("PRE docs/") && listing.contains("big.bin"),
        "{listing}"
    );
    let recursive = ok(&server, &["s3", "ls", "--recursive", "s3://cli-bucket/"]);
    assert!(recursive.contains("docs/hello.txt"), "{recursive}");

    let etag = ok(
        &server,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "cli-bucket",
            "--key",
            "big.bin",
            "--query",
            "ETag",
            "--output",
            "text",
        ],
    );
    assert!(
        etag.trim().trim_matches('"').ends_with("-3"),
        "multipart ETag: {etag}"
    );

    let down = work.path().join("down.bin");
    ok(
        &server,
        &[
            "s3",
            "cp",
            "s3://cli-bucket/big.bin",
            down.to_str().unwrap(),
        ],
    );
    assert!(std::fs::read(&down).unwrap() == big_data);

    let url = ok(
        &server,
        &[
            "s3",
            "presign",
            "s3://cli-bucket/docs/hello.txt",
            "--expires-in",
            "300",
        ],
    );
    let url: http::Uri = url.trim().parse().unwrap();
    let resp = crate::harness::raw_request(
        server.addr,
        "GET",
        url.path_and_query().unwrap().as_str(),
        &[],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello from the aws cli\n");

    let failed = aws(&server, &["s3", "rb", "s3://cli-bucket"]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("BucketNotEmpty"));
    ok(&server, &["s3", "rm", "--recursive", "s3://cli-bucket/"]);
    ok(&server, &["s3", "rb", "s3://cli-bucket"]);
    let buckets = ok(&server, &["s3", "ls"]);
    assert!(!buckets.contains("cli-bucket"));
}
