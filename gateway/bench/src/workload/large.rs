//! Large objects: one object per stream, single PUT or multipart, and whole-object GETs.

use crate::BenchError;
use crate::report::{RateKind, WorkloadReport};
use crate::runner::{Bench, repeat_runs};
use crate::size::format_size;

use super::{large_key, prepare_large_objects};

/// Shape of a large-object workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeOptions {
    /// Bytes per object.
    pub size: u64,
    /// Objects transferred concurrently, one connection each.
    pub streams: usize,
    /// Multipart part size; `None` for a single PUT.
    pub part_size: Option<u64>,
}

impl LargeOptions {
    fn describe(&self, base: &str) -> String {
        let mut name = format!("{base}, {} stream{}", self.streams, plural(self.streams));
        if let Some(part_size) = self.part_size {
            name.push_str(&format!(", multipart {} parts", format_size(part_size)));
        }
        name
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// PUTs `streams` objects of `size` bytes concurrently, each with fresh unique content.
pub async fn large_put(bench: &Bench, options: LargeOptions) -> Result<WorkloadReport, BenchError> {
    let name = options.describe("large-put");
    let LargeOptions {
        size,
        streams,
        part_size,
    } = options;
    repeat_runs(bench, name.clone(), size, RateKind::Bytes, |_run| {
        let (client, bucket) = (bench.client.clone(), bench.bucket.clone());
        bench.run_pool(&name, streams as u64, streams, move |stream| {
            let (client, bucket) = (client.clone(), bucket.clone());
            async move {
                let key = large_key(size, stream as usize);
                let seed = rand::random();
                match part_size {
                    Some(part_size) => {
                        client
                            .put_object_multipart(&bucket, &key, seed, size, part_size)
                            .await?
                    }
                    None => client.put_object(&bucket, &key, seed, size).await?,
                }
                Ok(size)
            }
        })
    })
    .await
}

/// GETs the `streams` large objects concurrently (uploading them first if missing).
///
/// With a `degraded_label` nothing is uploaded and the row is labelled: the operator runs
/// it after removing fragment stores, so the objects must already be there.
pub async fn large_get(
    bench: &Bench,
    options: LargeOptions,
    degraded_label: Option<&str>,
) -> Result<WorkloadReport, BenchError> {
    let LargeOptions { size, streams, .. } = options;
    let name = match degraded_label {
        None => LargeOptions {
            part_size: None,
            ..options
        }
        .describe("large-get"),
        Some(label) => format!(
            "{} ({label})",
            LargeOptions {
                part_size: None,
                ..options
            }
            .describe("degraded-get")
        ),
    };
    prepare_large_objects(bench, size, streams, degraded_label.is_none()).await?;
    let verify = bench.verify;
    repeat_runs(bench, name.clone(), size, RateKind::Bytes, |_run| {
        let (client, bucket) = (bench.client.clone(), bench.bucket.clone());
        bench.run_pool(&name, streams as u64, streams, move |stream| {
            let (client, bucket) = (client.clone(), bucket.clone());
            async move {
                let key = large_key(size, stream as usize);
                client.get_object(&bucket, &key, None, verify).await
            }
        })
    })
    .await
}
