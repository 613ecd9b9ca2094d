//! `deoss-bench`: a load generator that drives any S3 endpoint, so deoss and a peer such
//! as `s3s-fs` are measured by the same command on the same machine.
//!
//! Where it sits: outside the gateway, talking to it only over HTTP like any client. It
//! signs requests itself ([`sigv4`], `UNSIGNED-PAYLOAD`, so it never hashes bodies) over a
//! pooled hyper 1 client ([`client`]), generates unique incompressible bodies on the fly
//! ([`payload`]), and watches the server process through `/proc` ([`probe`]) for CPU
//! seconds per GB and peak RSS. Workloads ([`workload`]) are repeated `--runs` times; the
//! [`report`] is a markdown table (median and each run) plus optional JSON.
//!
//! Safety notes: every loop is bounded by a count and by the `--max-seconds` deadline, and
//! the CLI refuses non-loopback endpoints unless told otherwise. The access key is sent
//! only as a signature; the secret never appears in output.

pub mod cli;
pub mod client;
mod error;
pub mod payload;
pub mod probe;
pub mod report;
pub mod runner;
pub mod sigv4;
pub mod size;
pub mod stats;
pub mod workload;

use std::time::Duration;

pub use error::BenchError;

use crate::cli::{Cli, WorkloadCommand};
use crate::client::S3Client;
use crate::probe::ProcessProbe;
use crate::report::WorkloadReport;
use crate::runner::Bench;
use crate::sigv4::Credentials;
use crate::workload::{LargeOptions, RangeOptions, SmallOptions};

/// Runs the workload `cli` names and returns its table rows. The binary prints them; the
/// tests call this same function against a server on port 0.
pub async fn run(cli: &Cli) -> Result<Vec<WorkloadReport>, BenchError> {
    cli.check_endpoint()?;
    let credentials = Credentials {
        access_key: cli.access_key.clone(),
        secret_key: cli.secret_key.clone(),
        region: cli.region.clone(),
    };
    let bench = Bench {
        client: S3Client::new(&cli.endpoint, credentials)?,
        bucket: cli.bucket.clone(),
        probe: cli.server_pid.map(ProcessProbe::new).transpose()?,
        client_probe: ProcessProbe::new(std::process::id()).ok(),
        verify: cli.verify,
        runs: cli.runs as usize,
        deadline: tokio::time::Instant::now() + Duration::from_secs(cli.max_seconds),
    };
    bench
        .bounded("create bucket", bench.client.ensure_bucket(&bench.bucket))
        .await?;

    match &cli.workload {
        WorkloadCommand::LargePut(args) => {
            let options = LargeOptions {
                size: args.size,
                streams: args.streams as usize,
                part_size: args.multipart.then_some(args.part_size),
            };
            Ok(vec![workload::large_put(&bench, options).await?])
        }
        WorkloadCommand::LargeGet(args) => {
            let options = LargeOptions {
                size: args.size,
                streams: args.streams as usize,
                part_size: None,
            };
            Ok(vec![workload::large_get(&bench, options, None).await?])
        }
        WorkloadCommand::DegradedGet(args) => {
            let options = LargeOptions {
                size: args.size,
                streams: args.streams as usize,
                part_size: None,
            };
            let label = Some(args.label.as_str());
            Ok(vec![workload::large_get(&bench, options, label).await?])
        }
        WorkloadCommand::Small(args) => {
            let options = SmallOptions {
                size: args.size,
                count: args.count,
                concurrency: args.concurrency as usize,
            };
            workload::small(&bench, options).await
        }
        WorkloadCommand::RangeGet(args) => {
            let options = RangeOptions {
                object_size: args.object_size,
                range_size: args.range_size,
                count: args.count,
                concurrency: args.concurrency as usize,
            };
            Ok(vec![workload::range_get(&bench, options).await?])
        }
        WorkloadCommand::All(args) => run_suite(&bench, args).await,
    }
}

/// The standard suite, in an order where each GET reads what the PUT before it wrote.
async fn run_suite(bench: &Bench, args: &cli::AllArgs) -> Result<Vec<WorkloadReport>, BenchError> {
    let single = LargeOptions {
        size: args.size,
        streams: 1,
        part_size: None,
    };
    let multi = LargeOptions {
        streams: args.streams as usize,
        ..single
    };
    let multipart = LargeOptions {
        part_size: Some(args.part_size),
        ..single
    };
    let mut rows = vec![
        workload::large_put(bench, single).await?,
        workload::large_get(bench, single, None).await?,
        workload::large_put(bench, multipart).await?,
        workload::large_put(bench, multi).await?,
        workload::large_get(bench, multi, None).await?,
    ];
    let range = RangeOptions {
        object_size: args.size,
        range_size: args.range_size,
        count: args.range_count,
        concurrency: 1,
    };
    rows.push(workload::range_get(bench, range).await?);
    let small = SmallOptions {
        size: args.small_size,
        count: args.count,
        concurrency: args.concurrency as usize,
    };
    rows.extend(workload::small(bench, small).await?);
    Ok(rows)
}
