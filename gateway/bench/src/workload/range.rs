//! Random range GETs within one large object: a latency workload.

use crate::BenchError;
use crate::report::{RateKind, WorkloadReport};
use crate::runner::{Bench, repeat_runs};
use crate::size::format_size;

use super::{large_key, prepare_large_objects};

/// Shape of a range-GET workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeOptions {
    /// Size of the object the ranges are read from (uploaded first if missing).
    pub object_size: u64,
    /// Bytes per range.
    pub range_size: u64,
    /// Ranges per run.
    pub count: u64,
    /// Ranges in flight at once.
    pub concurrency: usize,
}

/// Reads `count` random ranges of `range_size` bytes from the first large object.
pub async fn range_get(bench: &Bench, options: RangeOptions) -> Result<WorkloadReport, BenchError> {
    let RangeOptions {
        object_size,
        range_size,
        count,
        concurrency,
    } = options;
    if range_size == 0 || range_size > object_size {
        return Err(BenchError::Protocol {
            op: "range-get",
            key: large_key(object_size, 0),
            detail: "--range-size must be between 1 byte and the object size".into(),
        });
    }
    let name = format!(
        "range-get in {}, {concurrency} concurrent",
        format_size(object_size)
    );
    prepare_large_objects(bench, object_size, 1, true).await?;
    let verify = bench.verify;
    repeat_runs(bench, name.clone(), range_size, RateKind::Ops, |_run| {
        let (client, bucket) = (bench.client.clone(), bench.bucket.clone());
        bench.run_pool(&name, count, concurrency, move |_| {
            let (client, bucket) = (client.clone(), bucket.clone());
            async move {
                let offset = rand::random_range(0..=object_size - range_size);
                let key = large_key(object_size, 0);
                client
                    .get_object(&bucket, &key, Some((offset, range_size)), verify)
                    .await
            }
        })
    })
    .await
}
