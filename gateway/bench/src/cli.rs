//! Command-line options. Global flags may come before or after the workload subcommand.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::BenchError;
use crate::size::size_arg;

/// Drives an S3 endpoint with a workload and prints a markdown table of the results.
#[derive(Debug, Parser)]
#[command(name = "deoss-bench", version)]
pub struct Cli {
    /// S3 endpoint, plain http (path-style requests).
    #[arg(
        long,
        global = true,
        env = "DEOSS_BENCH_ENDPOINT",
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoint: String,

    /// Access key the requests are signed with.
    #[arg(
        long,
        global = true,
        env = "DEOSS_BENCH_ACCESS_KEY",
        default_value = "deoss"
    )]
    pub access_key: String,

    /// Secret key the requests are signed with.
    #[arg(
        long,
        global = true,
        env = "DEOSS_BENCH_SECRET_KEY",
        default_value = "deoss-secret",
        hide_env_values = true
    )]
    pub secret_key: String,

    /// Region in the signature scope.
    #[arg(long, global = true, default_value = "us-east-1")]
    pub region: String,

    /// Bucket to use; created if missing.
    #[arg(long, global = true, default_value = "deoss-bench")]
    pub bucket: String,

    /// Server process to watch for CPU time and memory (Linux /proc).
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,

    /// Measured runs per workload; the table shows the median and each run.
    #[arg(long, global = true, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub runs: u64,

    /// Wall-clock limit for the whole command; runs cut short are reported as such.
    #[arg(long, global = true, default_value_t = 900)]
    pub max_seconds: u64,

    /// Check every byte read against what was written.
    #[arg(long, global = true)]
    pub verify: bool,

    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,

    /// Allow an endpoint that is not a loopback address (the bench is a load generator).
    #[arg(long, global = true)]
    pub allow_non_loopback: bool,

    #[command(subcommand)]
    pub workload: WorkloadCommand,
}

/// The workload to run.
#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// PUT large objects of unique random bytes.
    LargePut(LargeArgs),
    /// GET large objects (uploading them first if missing).
    LargeGet(LargeArgs),
    /// GET large objects after fragment stores were removed; the row carries --label.
    DegradedGet(DegradedArgs),
    /// PUT, then GET, then DELETE many small objects.
    Small(SmallArgs),
    /// GET random ranges of one large object, for p50/p99 latency.
    RangeGet(RangeArgs),
    /// The standard suite: large PUT (single and multipart, 1 and N streams), large GET,
    /// range GET and small objects.
    All(AllArgs),
}

#[derive(Debug, Args)]
pub struct LargeArgs {
    /// Bytes per object.
    #[arg(long, default_value = "1GiB", value_parser = size_arg)]
    pub size: u64,
    /// Objects transferred concurrently.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub streams: u64,
    /// Upload with multipart instead of one PUT (large-put only).
    #[arg(long)]
    pub multipart: bool,
    /// Multipart part size.
    #[arg(long, default_value = "64MiB", value_parser = size_arg)]
    pub part_size: u64,
}

#[derive(Debug, Args)]
pub struct DegradedArgs {
    /// Bytes per object (as given to the earlier large-get).
    #[arg(long, default_value = "1GiB", value_parser = size_arg)]
    pub size: u64,
    /// Objects read concurrently (as given to the earlier large-get).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub streams: u64,
    /// What was removed, for the table row (e.g. "4 data fragment stores down").
    #[arg(long, default_value = "fragment stores removed")]
    pub label: String,
}

#[derive(Debug, Args)]
pub struct SmallArgs {
    /// Bytes per object.
    #[arg(long, default_value = "4KiB", value_parser = size_arg)]
    pub size: u64,
    /// Objects per run.
    #[arg(long, default_value_t = 2000)]
    pub count: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
}

#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Size of the object the ranges come from.
    #[arg(long, default_value = "1GiB", value_parser = size_arg)]
    pub object_size: u64,
    /// Bytes per range.
    #[arg(long, default_value = "1MiB", value_parser = size_arg)]
    pub range_size: u64,
    /// Ranges per run.
    #[arg(long, default_value_t = 500)]
    pub count: u64,
    /// Ranges in flight at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    /// Bytes per large object.
    #[arg(long, default_value = "1GiB", value_parser = size_arg)]
    pub size: u64,
    /// Streams of the multi-stream large rows.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub streams: u64,
    /// Multipart part size.
    #[arg(long, default_value = "64MiB", value_parser = size_arg)]
    pub part_size: u64,
    /// Bytes per small object.
    #[arg(long, default_value = "4KiB", value_parser = size_arg)]
    pub small_size: u64,
    /// Small objects per run.
    #[arg(long, default_value_t = 2000)]
    pub count: u64,
    /// Small-object requests in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// Bytes per range GET.
    #[arg(long, default_value = "1MiB", value_parser = size_arg)]
    pub range_size: u64,
    /// Range GETs per run.
    #[arg(long, default_value_t = 500)]
    pub range_count: u64,
}

impl Cli {
    /// Refuses endpoints off this machine unless explicitly allowed: a load generator
    /// pointed at the wrong address is a denial of service.
    pub fn check_endpoint(&self) -> Result<(), BenchError> {
        if self.allow_non_loopback {
            return Ok(());
        }
        let invalid = |reason: &str| BenchError::Endpoint {
            endpoint: self.endpoint.clone(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = self.endpoint.parse().map_err(|_| invalid("not a URI"))?;
        let host = uri.host().ok_or_else(|| invalid("missing host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if loopback {
            Ok(())
        } else {
            Err(invalid(
                "not a loopback address; pass --allow-non-loopback if you mean it",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_workload_with_global_flags_on_either_side() {
        let cli = Cli::try_parse_from([
            "deoss-bench",
            "--runs",
            "5",
            "large-put",
            "--size",
            "64MiB",
            "--multipart",
            "--part-size",
            "8MiB",
            "--server-pid",
            "42",
        ])
        .unwrap();
        assert_eq!(cli.runs, 5);
        assert_eq!(cli.server_pid, Some(42));
        let WorkloadCommand::LargePut(args) = cli.workload else {
            panic!("wrong workload")
        };
        assert_eq!(
            (args.size, args.multipart, args.part_size),
            (64 << 20, true, 8 << 20)
        );
    }

    #[test]
    fn rejects_bad_sizes_and_zero_runs() {
        assert!(Cli::try_parse_from(["deoss-bench", "small", "--size", "4QiB"]).is_err());
        assert!(Cli::try_parse_from(["deoss-bench", "--runs", "0", "small"]).is_err());
    }

    #[test]
    fn only_loopback_endpoints_by_default() {
        let with = |endpoint: &str, allow: bool| {
            let mut args = vec!["deoss-bench", "--endpoint", endpoint, "small"];
            if allow {
                args.push("--allow-non-loopback");
            }
            Cli::try_parse_from(args).unwrap().check_endpoint()
        };
        assert!(with("http://127.0.0.1:9000", false).is_ok());
        assert!(with("http://localhost:9000", false).is_ok());
        assert!(with("http://[::1]:9000", false).is_ok());
        assert!(with("http://10.0.0.5:9000", false).is_err());
        assert!(with("http://example.invalid", false).is_err());
        assert!(with("http://10.0.0.5:9000", true).is_ok());
    }
}
