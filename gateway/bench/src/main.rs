//! `deoss-bench` binary: parses the CLI, runs one workload against the endpoint, prints the
//! markdown table to stdout (progress and errors go to stderr) and optionally writes JSON.
//!
//! Example, against a local s3s-fs or deoss:
//! `deoss-bench --endpoint http://127.0.0.1:9000 --access-key AK --secret-key SK large-put`

use anyhow::Context;
use clap::Parser;

use deoss_bench::cli::Cli;
use deoss_bench::report::{format_table, to_json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    eprintln!(
        "deoss-bench: {:?} against {} ({} run(s), at most {} s)",
        cli.workload, cli.endpoint, cli.runs, cli.max_seconds
    );
    let rows = deoss_bench::run(&cli).await?;
    print!("{}", format_table(&rows));
    if let Some(path) = &cli.json {
        std::fs::write(path, to_json(&rows))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
