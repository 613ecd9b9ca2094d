//! Small objects: a PUT phase, then GET, then DELETE of the same keys, each its own row.

use std::future::Future;

use crate::BenchError;
use crate::report::{RateKind, RunResult, WorkloadReport};
use crate::runner::{Bench, RowRuns, stop_reason};
use crate::size::format_size;

/// Shape of a small-object workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmallOptions {
    /// Bytes per object.
    pub size: u64,
    /// Objects per run.
    pub count: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// The phases of one small-object run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Put,
    Get,
    Delete,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Put => "PUT",
            Phase::Get => "GET",
            Phase::Delete => "DELETE",
        }
    }
}

/// Runs PUT, GET and DELETE phases over `count` objects per run; returns three rows.
pub async fn small(
    bench: &Bench,
    options: SmallOptions,
) -> Result<Vec<WorkloadReport>, BenchError> {
    let SmallOptions {
        size,
        count,
        concurrency,
    } = options;
    let phases = [Phase::Put, Phase::Get, Phase::Delete];
    let mut rows: Vec<RowRuns> = phases.iter().map(|_| RowRuns::default()).collect();
    let mut note = None;
    'runs: for run in 0..bench.runs {
        // A fresh base seed per run: every object of every run has its own bytes.
        let base_seed: u64 = rand::random();
        for (phase, row) in phases.iter().zip(rows.iter_mut()) {
            let name = format!("small {}", phase.as_str());
            let work = small_phase(bench, &name, *phase, run, base_seed, options);
            match bench.measure_run(work).await {
                Ok((result, usage)) => row.add(result, usage),
                Err(error) => {
                    note = Some(stop_reason(error, row.runs.len())?);
                    break 'runs;
                }
            }
        }
    }
    Ok(phases
        .iter()
        .zip(rows)
        .map(|(phase, row)| {
            let name = format!(
                "small {}, {count} objects, {concurrency} concurrent",
                phase.as_str()
            );
            let mut report = WorkloadReport::new(name, size, RateKind::Ops, row.runs, row.server);
            report.note = note.clone();
            report
        })
        .collect())
}

fn small_phase(
    bench: &Bench,
    name: &str,
    phase: Phase,
    run: usize,
    base_seed: u64,
    options: SmallOptions,
) -> impl Future<Output = Result<RunResult, BenchError>> {
    let (client, bucket, verify) = (bench.client.clone(), bench.bucket.clone(), bench.verify);
    let SmallOptions {
        size,
        count,
        concurrency,
    } = options;
    bench.run_pool(name, count, concurrency, move |index| {
        let (client, bucket) = (client.clone(), bucket.clone());
        async move {
            let key = format!(
                "deoss-bench/small-{}/{run}/{index}",
                format_size(size).replace(' ', "")
            );
            match phase {
                Phase::Put => {
                    let seed = base_seed.wrapping_add(index);
                    client.put_object(&bucket, &key, seed, size).await?;
                    Ok(size)
                }
                Phase::Get => client.get_object(&bucket, &key, None, verify).await,
                Phase::Delete => {
                    client.delete_object(&bucket, &key).await?;
                    Ok(0)
                }
            }
        }
    })
}
