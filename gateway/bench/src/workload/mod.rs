//! The workloads: each turns options into table rows by driving the endpoint.
//!
//! Objects live under the `deoss-bench/` prefix. Large objects have stable keys per size
//! and stream (`deoss-bench/large-<bytes>/<stream>`), so `large-put` leaves behind exactly
//! what `large-get`, `range-get` and a later `degraded-get` read.

mod large;
mod range;
mod small;

pub use large::{LargeOptions, large_get, large_put};
pub use range::{RangeOptions, range_get};
pub use small::{SmallOptions, small};

use crate::BenchError;
use crate::runner::Bench;

/// The key of large object `stream` of `size` bytes.
pub fn large_key(size: u64, stream: usize) -> String {
    format!("deoss-bench/large-{size}/{stream}")
}

/// Makes sure the large objects a GET workload reads exist with the right size. With
/// `upload_missing` they are uploaded (not measured); without it (degraded GETs, where the
/// operator has already removed fragment stores) a missing object is an error.
pub async fn prepare_large_objects(
    bench: &Bench,
    size: u64,
    streams: usize,
    upload_missing: bool,
) -> Result<(), BenchError> {
    for stream in 0..streams {
        let key = large_key(size, stream);
        let existing = bench
            .bounded("HEAD", bench.client.head_object(&bench.bucket, &key))
            .await?;
        if existing.is_some_and(|info| info.size == size) {
            continue;
        }
        if !upload_missing {
            return Err(BenchError::Protocol {
                op: "prepare",
                key,
                detail: "object missing or of another size: run large-get with the same --size \
                         and --streams first, then remove fragment stores"
                    .into(),
            });
        }
        let upload = bench
            .client
            .put_object(&bench.bucket, &key, rand::random(), size);
        bench.bounded("PUT (preparing)", upload).await?;
    }
    Ok(())
}
