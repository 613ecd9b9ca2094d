//! Results: one row per workload, printed as a markdown table and optionally as JSON.

use std::time::Duration;

use serde::Serialize;

use crate::size::format_size;
use crate::stats::{median, percentile_of_sorted};

/// Which figure is the headline of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKind {
    /// Throughput in MB/s (10^6 bytes per second, as disks and the issue quote them).
    Bytes,
    /// Operations per second.
    Ops,
}

/// What one run of a workload measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    #[serde(rename = "elapsed_seconds", serialize_with = "as_seconds")]
    pub elapsed: Duration,
    pub ops: u64,
    pub bytes: u64,
    /// CPU seconds the bench itself spent, to show the load generator is not the limit.
    pub client_cpu_seconds: f64,
    #[serde(skip)]
    pub latencies: Vec<Duration>,
}

impl RunResult {
    /// The headline figure of this run: MB/s or ops/s.
    pub fn rate(&self, kind: RateKind) -> f64 {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        match kind {
            RateKind::Bytes => self.bytes as f64 / 1e6 / seconds,
            RateKind::Ops => self.ops as f64 / seconds,
        }
    }
}

/// What the server spent over all runs of a row (only with `--server-pid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerUsage {
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    pub vm_hwm_bytes: u64,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    pub workload: String,
    pub bytes_per_op: u64,
    pub rate_kind: RateKind,
    pub runs: Vec<RunResult>,
    /// Median over runs of the headline rate.
    pub median_rate: f64,
    /// The headline rate of each run, in run order.
    pub run_rates: Vec<f64>,
    #[serde(rename = "p50_ms", serialize_with = "as_optional_millis")]
    pub p50: Option<Duration>,
    #[serde(rename = "p99_ms", serialize_with = "as_optional_millis")]
    pub p99: Option<Duration>,
    pub server: Option<ServerUsage>,
    /// Why fewer runs than asked for are reported (deadline), if so.
    pub note: Option<String>,
}

impl WorkloadReport {
    /// Builds a row from its runs: median of rates, latencies pooled over all runs.
    pub fn new(
        workload: String,
        bytes_per_op: u64,
        rate_kind: RateKind,
        runs: Vec<RunResult>,
        server: Option<ServerUsage>,
    ) -> Self {
        let run_rates: Vec<f64> = runs.iter().map(|run| run.rate(rate_kind)).collect();
        let mut latencies: Vec<Duration> = runs
            .iter()
            .flat_map(|r| r.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let (p50, p99) = if latencies.is_empty() {
            (None, None)
        } else {
            (
                Some(percentile_of_sorted(&latencies, 50.0)),
                Some(percentile_of_sorted(&latencies, 99.0)),
            )
        };
        Self {
            workload,
            bytes_per_op,
            rate_kind,
            median_rate: median(&run_rates).unwrap_or(0.0),
            run_rates,
            runs,
            p50,
            p99,
            server,
            note: None,
        }
    }

    fn total_bytes(&self) -> u64 {
        self.runs.iter().map(|run| run.bytes).sum()
    }

    fn total_ops(&self) -> u64 {
        self.runs.iter().map(|run| run.ops).sum()
    }

    /// Server CPU per unit of work: seconds per GB (10^9 bytes) for byte workloads,
    /// seconds per 1000 operations otherwise.
    pub fn server_cpu_per_unit(&self) -> Option<f64> {
        self.per_unit(self.server?.cpu_seconds)
    }

    /// The bench's own CPU per unit of work, in the same unit as the server's.
    pub fn client_cpu_per_unit(&self) -> Option<f64> {
        self.per_unit(self.runs.iter().map(|run| run.client_cpu_seconds).sum())
    }

    fn per_unit(&self, cpu_seconds: f64) -> Option<f64> {
        let units = match self.rate_kind {
            RateKind::Bytes => self.total_bytes() as f64 / 1e9,
            RateKind::Ops => self.total_ops() as f64 / 1000.0,
        };
        (units > 0.0).then(|| cpu_seconds / units)
    }
}

const HEADER: &str = "| workload | bytes/op | runs | median | each run | p50 | p99 | server CPU | server peak RSS | server VmHWM | bench CPU |";
const RULE: &str = "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|";

/// The markdown table for BENCHMARKS.md, with notes (cut-short runs) listed under it.
pub fn format_table(rows: &[WorkloadReport]) -> String {
    let mut out = format!("{HEADER}\n{RULE}\n");
    for row in rows {
        let unit = match row.rate_kind {
            RateKind::Bytes => "MB/s",
            RateKind::Ops => "ops/s",
        };
        let each_run = row
            .run_rates
            .iter()
            .map(|r| format_rate(*r))
            .collect::<Vec<_>>()
            .join(" / ");
        let cpu = format_cpu(row.server_cpu_per_unit(), row.rate_kind);
        let client_cpu = format_cpu(row.client_cpu_per_unit(), row.rate_kind);
        let (rss, hwm) = match row.server {
            Some(usage) => (
                format_mib(usage.peak_rss_bytes),
                format_mib(usage.vm_hwm_bytes),
            ),
            None => ("-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} {unit} | {each_run} | {} | {} | {cpu} | {rss} | {hwm} | {client_cpu} |\n",
            row.workload,
            format_size(row.bytes_per_op),
            row.runs.len(),
            format_rate(row.median_rate),
            format_latency(row.p50),
            format_latency(row.p99),
        ));
    }
    for row in rows.iter().filter(|row| row.note.is_some()) {
        out.push_str(&format!(
            "\nNote ({}): {}\n",
            row.workload,
            row.note.as_deref().unwrap_or("")
        ));
    }
    out
}

/// The rows as pretty JSON.
pub fn to_json(rows: &[WorkloadReport]) -> String {
    serde_json::to_string_pretty(rows).expect("reports always serialise")
}

fn format_cpu(per_unit: Option<f64>, kind: RateKind) -> String {
    match (per_unit, kind) {
        (Some(cpu), RateKind::Bytes) => format!("{cpu:.2} s/GB"),
        (Some(cpu), RateKind::Ops) => format!("{cpu:.2} s/1k ops"),
        (None, _) => "-".into(),
    }
}

fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

fn format_latency(latency: Option<Duration>) -> String {
    match latency {
        None => "-".into(),
        Some(latency) => {
            let ms = latency.as_secs_f64() * 1000.0;
            if ms >= 100.0 {
                format!("{ms:.0} ms")
            } else {
                format!("{ms:.2} ms")
            }
        }
    }
}

fn format_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn as_seconds<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(duration.as_secs_f64())
}

fn as_optional_millis<S: serde::Serializer>(
    duration: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seconds: f64, ops: u64, bytes: u64, latency_ms: u64) -> RunResult {
        RunResult {
            elapsed: Duration::from_secs_f64(seconds),
            ops,
            bytes,
            client_cpu_seconds: 0.5,
            latencies: vec![Duration::from_millis(latency_ms); ops as usize],
        }
    }

    #[test]
    fn table_row_for_a_throughput_workload() {
        let gib = 1u64 << 30;
        let runs = vec![
            run(2.0, 1, gib, 2000),
            run(4.0, 1, gib, 4000),
            run(2.5, 1, gib, 2500),
        ];
        let usage = ServerUsage {
            cpu_seconds: 3.0 * 1.2 * gib as f64 / 1e9,
            peak_rss_bytes: 64 << 20,
            vm_hwm_bytes: 80 << 20,
        };
        let row = WorkloadReport::new("large-put".into(), gib, RateKind::Bytes, runs, Some(usage));
        let table = format_table(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(lines[1], RULE);
        assert_eq!(
            lines[2],
            "| large-put | 1 GiB | 3 | 429 MB/s | 537 / 268 / 429 | 2500 ms | 4000 ms | 1.20 s/GB | 64.0 MiB | 80.0 MiB | 0.47 s/GB |"
        );
    }

    #[test]
    fn table_row_for_an_ops_workload_without_server() {
        let runs = vec![run(1.0, 900, 900 * 4096, 3), run(1.0, 1000, 1000 * 4096, 5)];
        let mut row = WorkloadReport::new("small PUT".into(), 4096, RateKind::Ops, runs, None);
        row.note = Some("deadline reached".into());
        let table = format_table(&[row]);
        assert!(
            table.contains(
                "| small PUT | 4 KiB | 2 | 950 ops/s | 900 / 1000 | 5.00 ms | 5.00 ms | - | - | - | 0.53 s/1k ops |"
            ),
            "{table}"
        );
        assert!(
            table.contains("Note (small PUT): deadline reached"),
            "{table}"
        );
    }

    #[test]
    fn cpu_per_thousand_ops() {
        let runs = vec![run(1.0, 2000, 0, 1)];
        let usage = ServerUsage {
            cpu_seconds: 3.0,
            ..ServerUsage::default()
        };
        let row = WorkloadReport::new("small GET".into(), 4096, RateKind::Ops, runs, Some(usage));
        assert_eq!(row.server_cpu_per_unit(), Some(1.5));
    }

    #[test]
    fn json_has_the_headline_fields() {
        let row = WorkloadReport::new(
            "x".into(),
            1,
            RateKind::Ops,
            vec![run(1.0, 10, 10, 2)],
            None,
        );
        let json: serde_json::Value = serde_json::from_str(&to_json(&[row])).unwrap();
        assert_eq!(json[0]["median_rate"], 10.0);
        assert_eq!(json[0]["rate_kind"], "ops");
        assert_eq!(json[0]["p99_ms"], 2.0);
        assert_eq!(json[0]["runs"][0]["elapsed_seconds"], 1.0);
    }
}
