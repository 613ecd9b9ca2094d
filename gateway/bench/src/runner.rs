//! The measuring loop shared by all workloads: bounded worker pools, per-run server
//! probing, and the `--max-seconds` deadline.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::BenchError;
use crate::client::S3Client;
use crate::probe::ProcessProbe;
use crate::report::{RateKind, RunResult, ServerUsage, WorkloadReport};

/// Everything a workload needs: where to send, what to watch, and when to stop.
#[derive(Debug, Clone)]
pub struct Bench {
    pub client: S3Client,
    pub bucket: String,
    pub probe: Option<ProcessProbe>,
    /// This process, for the bench's own CPU time.
    pub client_probe: Option<ProcessProbe>,
    pub verify: bool,
    pub runs: usize,
    pub deadline: Instant,
}

impl Bench {
    /// Runs `work` under the deadline; `op` names it in the error if time runs out.
    pub async fn bounded<T>(
        &self,
        op: &str,
        work: impl Future<Output = Result<T, BenchError>>,
    ) -> Result<T, BenchError> {
        tokio::time::timeout_at(self.deadline, work)
            .await
            .map_err(|_| BenchError::DeadlineExceeded { op: op.to_owned() })?
    }

    pub fn deadline_passed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Performs `count` operations with `concurrency` workers; `op(i)` does operation `i`
    /// and returns the payload bytes it moved. The first error stops every worker.
    pub async fn run_pool<F, Fut>(
        &self,
        name: &str,
        count: u64,
        concurrency: usize,
        op: F,
    ) -> Result<RunResult, BenchError>
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<u64, BenchError>> + Send + 'static,
    {
        let op = Arc::new(op);
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut workers = JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (op, next, deadline) = (op.clone(), next.clone(), self.deadline);
            let name = name.to_owned();
            workers.spawn(async move {
                let mut latencies = Vec::new();
                let mut bytes = 0u64;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let op_started = Instant::now();
                    bytes += tokio::time::timeout_at(deadline, op(index))
                        .await
                        .map_err(|_| BenchError::DeadlineExceeded { op: name.clone() })??;
                    latencies.push(op_started.elapsed());
                }
                Ok::<_, BenchError>((latencies, bytes))
            });
        }
        let mut result = RunResult {
            elapsed: Duration::ZERO,
            ops: 0,
            bytes: 0,
            client_cpu_seconds: 0.0,
            latencies: Vec::with_capacity(count.min(1 << 20) as usize),
        };
        while let Some(joined) = workers.join_next().await {
            let (latencies, bytes) = match joined {
                Ok(Ok(done)) => done,
                Ok(Err(error)) => {
                    workers.abort_all();
                    return Err(error);
                }
                Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
            };
            result.ops += latencies.len() as u64;
            result.bytes += bytes;
            result.latencies.extend(latencies);
        }
        result.elapsed = started.elapsed();
        Ok(result)
    }

    /// Measures one run of `work`: the bench's own CPU always (where /proc is readable),
    /// the server's CPU and RSS when it is probed.
    pub async fn measure_run(
        &self,
        work: impl Future<Output = Result<RunResult, BenchError>>,
    ) -> Result<(RunResult, Option<ServerUsage>), BenchError> {
        let client_before = self.client_probe.and_then(|me| me.cpu_ticks().ok());
        let (mut run, usage) = self.measure_server(work).await?;
        if let (Some(me), Some(before)) = (self.client_probe, client_before)
            && let Ok(after) = me.cpu_ticks()
        {
            run.client_cpu_seconds = me.seconds(after.total().saturating_sub(before.total()));
        }
        Ok((run, usage))
    }

    async fn measure_server(
        &self,
        work: impl Future<Output = Result<RunResult, BenchError>>,
    ) -> Result<(RunResult, Option<ServerUsage>), BenchError> {
        let Some(probe) = self.probe else {
            return Ok((work.await?, None));
        };
        let cpu_before = probe.cpu_ticks()?;
        let sampler = probe.start_rss_sampler();
        let outcome = work.await;
        let peak_rss_bytes = sampler.finish().await;
        let result = outcome?;
        let cpu_after = probe.cpu_ticks()?;
        let usage = ServerUsage {
            cpu_seconds: probe.seconds(cpu_after.total().saturating_sub(cpu_before.total())),
            peak_rss_bytes,
            vm_hwm_bytes: probe.hwm_bytes()?,
        };
        Ok((result, Some(usage)))
    }
}

/// Collects the runs of one table row and what the server spent on them.
#[derive(Debug, Default)]
pub struct RowRuns {
    pub runs: Vec<RunResult>,
    pub server: Option<ServerUsage>,
}

impl RowRuns {
    pub fn add(&mut self, run: RunResult, usage: Option<ServerUsage>) {
        self.runs.push(run);
        if let Some(usage) = usage {
            let total = self.server.get_or_insert_with(ServerUsage::default);
            total.cpu_seconds += usage.cpu_seconds;
            total.peak_rss_bytes = total.peak_rss_bytes.max(usage.peak_rss_bytes);
            total.vm_hwm_bytes = total.vm_hwm_bytes.max(usage.vm_hwm_bytes);
        }
    }
}

/// Decides what a failed run means: a deadline after at least one complete run ends the
/// row early with a note; anything else (or a deadline before any run) is an error.
pub fn stop_reason(error: BenchError, completed_runs: usize) -> Result<String, BenchError> {
    match error {
        BenchError::DeadlineExceeded { op } if completed_runs > 0 => Ok(format!(
            "--max-seconds reached during {op}; {completed_runs} complete run(s) reported"
        )),
        other => Err(other),
    }
}

/// Runs `one_run(run_index)` `bench.runs` times, measured, and makes the table row.
pub async fn repeat_runs<F, Fut>(
    bench: &Bench,
    workload: String,
    bytes_per_op: u64,
    rate_kind: RateKind,
    mut one_run: F,
) -> Result<WorkloadReport, BenchError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<RunResult, BenchError>>,
{
    let mut row = RowRuns::default();
    let mut note = None;
    for run_index in 0..bench.runs {
        match bench.measure_run(one_run(run_index)).await {
            Ok((run, usage)) => row.add(run, usage),
            Err(error) => {
                note = Some(stop_reason(error, row.runs.len())?);
                break;
            }
        }
    }
    let mut report = WorkloadReport::new(workload, bytes_per_op, rate_kind, row.runs, row.server);
    report.note = note;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::Credentials;

    /// A bench whose client is never used: the pools below run synthetic operations.
    fn bench_with_deadline(seconds: u64, runs: usize) -> Bench {
        let credentials = Credentials {
            access_key: "a".into(),
            secret_key: "b".into(),
            region: "us-east-1".into(),
        };
        Bench {
            client: S3Client::new("http://127.0.0.1:9", credentials).unwrap(),
            bucket: "unused".into(),
            probe: None,
            client_probe: None,
            verify: false,
            runs,
            deadline: Instant::now() + Duration::from_secs(seconds),
        }
    }

    async fn one_second_op(_index: u64) -> Result<u64, BenchError> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(5)
    }

    #[tokio::test(start_paused = true)]
    async fn pool_does_every_operation_with_bounded_concurrency() {
        let bench = bench_with_deadline(100, 1);
        let run = bench.run_pool("op", 10, 3, one_second_op).await.unwrap();
        assert_eq!((run.ops, run.bytes, run.latencies.len()), (10, 50, 10));
        // Ten one-second operations, three at a time: four rounds.
        assert!(run.elapsed >= Duration::from_secs(4) && run.elapsed < Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn pool_stops_at_the_deadline() {
        let bench = bench_with_deadline(2, 1);
        let error = bench
            .run_pool("slow op", 10, 1, one_second_op)
            .await
            .unwrap_err();
        assert!(matches!(error, BenchError::DeadlineExceeded { ref op } if op == "slow op"));
    }

    #[tokio::test(start_paused = true)]
    async fn first_error_fails_the_run() {
        let bench = bench_with_deadline(100, 1);
        let result = bench
            .run_pool("op", 100, 4, |index| async move {
                if index == 7 {
                    Err(BenchError::InvalidSize("boom".into()))
                } else {
                    one_second_op(index).await
                }
            })
            .await;
        assert!(matches!(result, Err(BenchError::InvalidSize(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn runs_cut_by_the_deadline_are_reported_with_a_note() {
        // Each run takes 3 s; the deadline at 5 s cuts the second of three.
        let bench = bench_with_deadline(5, 3);
        let report = repeat_runs(&bench, "w".into(), 5, RateKind::Ops, |_| {
            bench.run_pool("op", 3, 1, one_second_op)
        })
        .await
        .unwrap();
        assert_eq!(report.runs.len(), 1);
        assert!(report.note.as_deref().unwrap().contains("1 complete run"));

        // A deadline before any run completes is an error, not an empty row.
        let bench = bench_with_deadline(2, 3);
        let result = repeat_runs(&bench, "w".into(), 5, RateKind::Ops, |_| {
            bench.run_pool("op", 3, 1, one_second_op)
        })
        .await;
        assert!(matches!(result, Err(BenchError::DeadlineExceeded { .. })));
    }
}
