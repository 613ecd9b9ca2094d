//! The download pipeline: a plaintext range -> the chunks and segments that hold it -> read
//! units of a few MiB -> byte ranges of data fragments, fetched in parallel -> chunks opened
//! (which authenticates them) -> the requested bytes. A missing, failing or corrupt fragment
//! sends the segment down the degraded path (`rebuild`): whole fragments are fetched, checked
//! against their content hash if need be, and the data rebuilt from any k good ones.
//!
//! Memory: every unit and every rebuild holds its bytes in the gateway's read memory
//! (`read_memory`), taken in the order the bytes go out. When a unit fails, the units started
//! after it are dropped, and their memory given back, before its rebuild waits for room: they
//! could only be delivered after it, so holding them while waiting could deadlock reads that
//! wait on each other. They start again once it is rebuilt.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::FuturesOrdered;

use super::buffers::{PoolUser, PooledBuf};
use super::layout::{Geometry, SegmentSpan};
use super::lease::ReadLease;
use super::read_memory::ReadHold;
use super::rebuild::rebuild_bytes;
use super::unit::{UnitRead, open_span};
use super::{BodyError, ByteStream, Error, Inner, Result};
use crate::catalogue::{ExtentRecord, FragmentRecord};
use crate::crypto::ChunkCipher;
use crate::crypto::envelope::{CIPHER_CHUNK, PLAIN_CHUNK};

/// Decrypted units buffered ahead of the client.
const READ_AHEAD: usize = 2;
/// Sealed chunks per read unit (4 MiB of ciphertext).
pub(super) const READ_UNIT_CHUNKS: u64 = 64;
/// Units fetched and opened at once.
const READ_UNITS_IN_FLIGHT: usize = 4;

/// One extent of an object, ready to read.
#[derive(Debug, Clone)]
pub(crate) struct ReadableExtent {
    pub extent: Arc<ExtentRecord>,
    pub cipher: Arc<ChunkCipher>,
    /// Plaintext offset of the extent within the object.
    pub offset: u64,
}

/// Streams plaintext bytes `range` of an object made of `extents`.
/// `lease` keeps the version's fragments from the collector until the stream ends.
pub(crate) fn stream(
    svc: Arc<Inner>,
    extents: Vec<ReadableExtent>,
    range: Range<u64>,
    lease: Arc<ReadLease>,
) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, BodyError>>(READ_AHEAD);
    tokio::spawn(async move {
        let _lease = lease;
        for e in &extents {
            let start = range.start.max(e.offset);
            let end = range.end.min(e.offset + e.extent.size);
            if start >= end {
                continue;
            }
            let local = start - e.offset..end - e.offset;
            if let Err(err) = read_extent(&svc, e, local, &tx).await {
                tracing::error!(error = %err, "object read failed");
                let _ = tx.send(Err(Box::new(err))).await;
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Sends plaintext bytes `range` (relative to the extent) of one extent.
async fn read_extent(
    svc: &Arc<Inner>,
    e: &ReadableExtent,
    range: Range<u64>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, BodyError>>,
) -> Result<()> {
    let geometry = Geometry {
        plain_len: e.extent.size,
        k: u64::from(e.extent.k),
        fragment_size: u64::from(e.extent.fragment_size),
    };
    if let Some(inline) = &e.extent.inline_data {
        let first = range.start / PLAIN_CHUNK as u64;
        let last = (range.end - 1) / PLAIN_CHUNK as u64;
        let start = first as usize * CIPHER_CHUNK;
        let end = ((last as usize + 1) * CIPHER_CHUNK).min(inline.len());
        let cipher_bytes = inline
            .get(start..end)
            .ok_or_else(|| Error::DataLoss("inline data is truncated".into()))?;
        let cipher_bytes = PooledBuf::unpooled(cipher_bytes.to_vec());
        let chunk_count = geometry.chunk_count();
        let (buf, window) =
            open_span(&e.cipher, cipher_bytes, 0, first, chunk_count, &range).await?;
        // Not in the read memory: bounded by the inline threshold, and the catalogue record
        // holding the same bytes is not counted either.
        let _ = tx.send(Ok(ReadHold::none().attach(buf, window))).await;
        return Ok(());
    }
    ExtentRead::new(svc, e, geometry, range).run(tx).await
}

/// One segment of a read: its span, its fragments, and its plaintext once rebuilt (the part of
/// it within the requested range), if it had to be.
pub(super) struct SegmentRead {
    pub(super) span: SegmentSpan,
    pub(super) fragments: Vec<FragmentRecord>,
    /// Its units come from a rebuild: one of them failed, or it needs a store that failed.
    degraded: AtomicBool,
    /// The rebuild's memory has been asked for (by the first of its units to start).
    reserved: AtomicBool,
    /// That memory, until the unit that runs the rebuild takes it.
    pub(super) rebuild_hold: Mutex<Option<ReadHold>>,
    pub(super) rebuilt: tokio::sync::OnceCell<Bytes>,
}

/// How a unit is read, decided when it is started.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// From byte ranges of the data fragments, holding `bytes` of read memory.
    Healthy { bytes: usize },
    /// From its segment, rebuilt by this unit's hold of `bytes` (the first unit of the segment).
    Rebuild { bytes: usize },
    /// From its segment, rebuilt with memory another unit of it holds.
    Rebuilt,
}

/// A unit to start: where it is (span, unit within the span), its segment, and how.
struct Plan {
    at: (usize, usize),
    segment: Arc<SegmentRead>,
    unit: SegmentSpan,
    way: Way,
}

pub(super) enum Outcome {
    Plain(Bytes),
    /// The healthy path failed; `suspects` are the fragment indexes at fault, if known.
    Failed {
        err: Error,
        suspects: Vec<u32>,
    },
}

/// The reading of one extent's units, in order, a few at a time.
struct ExtentRead {
    svc: Arc<Inner>,
    e: ReadableExtent,
    geometry: Geometry,
    range: Range<u64>,
    spans: Vec<SegmentSpan>,
    /// The next unit to start: index in `spans`, index in `units`.
    next: (usize, usize),
    /// The units of `spans[next.0]`, and its segment, shared by the units of it in flight.
    units: Vec<SegmentSpan>,
    segment: Option<Arc<SegmentRead>>,
    /// Stores that failed a read of this extent: segments that need them are rebuilt at once
    /// rather than each waiting out the read timeout on a store that hangs.
    failed: HashSet<String>,
    /// Keeps the buffers of rebuilds for the next one rather than mapping fresh ones.
    pool_user: Option<PoolUser>,
}

impl ExtentRead {
    fn new(svc: &Arc<Inner>, e: &ReadableExtent, geometry: Geometry, range: Range<u64>) -> Self {
        Self {
            spans: geometry.spans(range.clone()),
            svc: svc.clone(),
            e: e.clone(),
            geometry,
            range,
            next: (0, 0),
            units: Vec::new(),
            segment: None,
            failed: HashSet::new(),
            pool_user: None,
        }
    }

    async fn run(mut self, tx: &tokio::sync::mpsc::Sender<Result<Bytes, BodyError>>) -> Result<()> {
        let mut in_flight = FuturesOrdered::new();
        let mut started: VecDeque<(usize, usize)> = VecDeque::new();
        // The next unit, waiting for its memory. Kept across loop turns so that it keeps its
        // place in the queue for memory.
        let mut waiting: Option<(Plan, BoxFuture<'static, ReadHold>)> = None;
        loop {
            if waiting.is_none()
                && in_flight.len() < READ_UNITS_IN_FLIGHT
                && let Some(plan) = self.next_plan()
            {
                match plan.way {
                    Way::Healthy { bytes } | Way::Rebuild { bytes } => {
                        waiting = Some((plan, self.svc.read_memory.take(bytes)));
                    }
                    Way::Rebuilt => {
                        started.push_back(plan.at);
                        in_flight.push_back(self.start(plan, ReadHold::none()));
                    }
                }
                continue;
            }
            if in_flight.is_empty() && waiting.is_none() {
                return Ok(());
            }
            tokio::select! {
                biased;
                Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                    let at = started.pop_front().expect("one position per unit");
                    match outcome? {
                        Outcome::Plain(plain) => {
                            if tx.send(Ok(plain)).await.is_err() {
                                return Ok(()); // the client went away
                            }
                        }
                        Outcome::Failed { err, suspects } => {
                            in_flight = FuturesOrdered::new();
                            started.clear();
                            waiting = None;
                            self.restart_degraded(at, &err, &suspects);
                        }
                    }
                }
                hold = async { waiting.as_mut().expect("waiting").1.as_mut().await }, if waiting.is_some() => {
                    let (plan, _) = waiting.take().expect("waiting");
                    started.push_back(plan.at);
                    in_flight.push_back(self.start(plan, hold));
                }
            }
        }
    }

    /// The next unit to start, if any, and how to read it.
    fn next_plan(&mut self) -> Option<Plan> {
        loop {
            let (s, u) = self.next;
            let span = self.spans.get(s)?;
            if self.segment.is_none() {
                self.units = span.split(READ_UNIT_CHUNKS);
                self.segment = Some(self.segment_read(span, false));
            }
            let Some(unit) = self.units.get(u).cloned() else {
                self.next = (s + 1, 0);
                self.segment = None;
                continue;
            };
            self.next = (s, u + 1);
            let segment = self.segment.clone().expect("set above");
            let way = self.way(&segment, &unit);
            return Some(Plan {
                at: (s, u),
                segment,
                unit,
                way,
            });
        }
    }

    fn segment_read(&self, span: &SegmentSpan, degraded: bool) -> Arc<SegmentRead> {
        // Fragments are sorted by (segment, idx): a segment's are found by binary search, not
        // by scanning the extent's list for every segment (quadratic on large objects).
        let all = &self.e.extent.fragments;
        let first = all.partition_point(|f| f.segment < span.segment);
        let end = first + all[first..].partition_point(|f| f.segment == span.segment);
        let fragments = all[first..end].to_vec();
        Arc::new(SegmentRead {
            span: span.clone(),
            fragments,
            degraded: AtomicBool::new(degraded),
            reserved: AtomicBool::new(false),
            rebuild_hold: Mutex::new(None),
            rebuilt: tokio::sync::OnceCell::new(),
        })
    }

    fn way(&mut self, segment: &SegmentRead, unit: &SegmentSpan) -> Way {
        if segment.reserved.load(Ordering::Relaxed) {
            return Way::Rebuilt;
        }
        if !segment.degraded.load(Ordering::Relaxed) {
            if let Some(bytes) = self.healthy_bytes(segment, unit) {
                return Way::Healthy { bytes };
            }
            tracing::warn!(
                segment = segment.span.segment,
                "degraded read: the segment needs a store that failed earlier in this read; rebuilding it from parity"
            );
            segment.degraded.store(true, Ordering::Relaxed);
        }
        self.pool_user
            .get_or_insert_with(|| self.svc.buffers.user());
        segment.reserved.store(true, Ordering::Relaxed);
        Way::Rebuild {
            bytes: rebuild_bytes(&self.geometry, segment.span.segment_len),
        }
    }

    /// The memory a unit's healthy read holds, or `None` if a data fragment it needs is not
    /// recorded or sits on a store that failed.
    fn healthy_bytes(&self, segment: &SegmentRead, unit: &SegmentSpan) -> Option<usize> {
        let pieces = self
            .geometry
            .fragment_ranges(segment.span.segment_len, &unit.cipher);
        let usable = pieces.iter().all(|(j, _)| {
            segment
                .fragments
                .get(*j)
                .is_some_and(|f| f.idx as usize == *j && !self.failed.contains(&f.store))
        });
        let len = (unit.cipher.end - unit.cipher.start) as usize;
        // Pieces of several fragments are copied into one buffer: for a moment, both exist.
        usable.then_some(if pieces.len() > 1 { 2 * len } else { len })
    }

    fn start(&self, plan: Plan, hold: ReadHold) -> BoxFuture<'static, Result<Outcome>> {
        let read = UnitRead {
            svc: self.svc.clone(),
            e: self.e.clone(),
            geometry: self.geometry,
            segment: plan.segment,
            unit: plan.unit,
            range: self.range.clone(),
        };
        match plan.way {
            Way::Healthy { .. } => read.healthy(hold).boxed(),
            Way::Rebuild { .. } | Way::Rebuilt => {
                if matches!(plan.way, Way::Rebuild { .. }) {
                    *read.segment.rebuild_hold.lock().expect("poisoned") = Some(hold);
                }
                let suspects = read
                    .segment
                    .fragments
                    .iter()
                    .filter(|f| self.failed.contains(&f.store))
                    .map(|f| f.idx)
                    .collect();
                read.rebuilt(suspects).boxed()
            }
        }
    }

    /// The unit at `at` failed: its segment is rebuilt, and every unit from it on starts again
    /// (the caller has dropped them, and their memory with them).
    fn restart_degraded(&mut self, at: (usize, usize), err: &Error, suspects: &[u32]) {
        let span = &self.spans[at.0];
        tracing::warn!(segment = span.segment, error = %err, "degraded read: rebuilding the segment from parity");
        let segment = self.segment_read(span, true);
        for f in &segment.fragments {
            if suspects.contains(&f.idx) {
                self.failed.insert(f.store.clone());
            }
        }
        self.units = span.split(READ_UNIT_CHUNKS);
        self.segment = Some(segment);
        self.next = at;
    }
}

#[cfg(test)]
mod tests;
