//! What a newcomer sees: first start on defaults, and clear refusals of bad configuration.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

fn deoss() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deoss"));
    for var in [
        "DEOSS_ROOT_ACCESS_KEY",
        "DEOSS_ROOT_SECRET_KEY",
        "DEOSS_ROOT_SECRET_KEY_FILE",
        "DEOSS_CONFIG",
        "DEOSS_LISTEN",
    ] {
        c.env_remove(var);
    }
    c.env("DEOSS_LOG", "error");
    c
}

/// Starts `deoss serve` in `dir`, returns its stdout lines up to "listening", and the child.
fn start(dir: &std::path::Path) -> (Vec<String>, std::process::Child) {
    let mut child = deoss()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("deoss exited early").unwrap();
        let done = line.starts_with("deoss listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (seen, child)
}

#[tokio::test]
async fn first_start_generates_and_keeps_root_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, mut child) = start(dir.path());
    let text = lines.join("\n");
    assert!(text.contains("Generated root credentials"), "{text}");
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::to_string)
            .expect("printed credential")
    };
    let (ak, sk) = (field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY="));
    let kept = dir.path().join("root-credentials");
    assert_eq!(
        std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&kept).unwrap().contains(&sk));
    assert_eq!(
        std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("stores"))
            .unwrap()
            .count(),
        12
    );
    assert!(dir.path().join("catalogue.db").exists());

    let addr = text
        .lines()
        .last()
        .unwrap()
        .trim_start_matches("deoss listening on http://")
        .to_string();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{addr}"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                &ak, &sk, None, None, "t",
            ))
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("first").send().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    // A second start neither prints nor changes them.
    let (lines, mut child) = start(dir.path());
    assert!(!lines.join("\n").contains("Generated root credentials"));
    assert!(std::fs::read_to_string(&kept).unwrap().contains(&sk));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_configuration_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = deoss()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--listen", "not-an-address"]).contains("listen"));
    assert!(run(&["--stores", "6"]).contains("erasure.default_profile"));
    assert!(run(&["--default-profile", "banana"]).contains("erasure.default_profile"));
    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "[limits]\ninline_treshold = 5\n").unwrap();
    let err = run(&["--config", toml.to_str().unwrap()]);
    assert!(err.contains("inline_treshold"), "{err}");
    let out = deoss()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("DEOSS_ROOT_ACCESS_KEY", "ONLYTHEACCESSKEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root_access_key"));
}

/// Logs that go to a file or a pipe (journald, docker, `2> log`) carry no colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = deoss()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("DEOSS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        if line.unwrap().starts_with("deoss listening on") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("INFO"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in {logs:?}");
}
