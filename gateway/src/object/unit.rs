//! Reading one unit of a segment: byte ranges of the data fragments, fetched in parallel and
//! opened in place (the healthy path), or a slice of the segment once rebuilt.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::buffers::PooledBuf;
use super::layout::{Geometry, SegmentSpan};
use super::read::{Outcome, READ_UNIT_CHUNKS, ReadableExtent, SegmentRead};
use super::read_memory::ReadHold;
use super::rebuild::rebuild_authentic;
use super::{Error, Inner, Result};
use crate::catalogue::FragmentRecord;
use crate::crypto::ChunkCipher;
use crate::crypto::envelope::{CIPHER_CHUNK, PLAIN_CHUNK, TAG_LEN};
use crate::store::StoreError;

/// What one unit's future needs.
pub(super) struct UnitRead {
    pub(super) svc: Arc<Inner>,
    pub(super) e: ReadableExtent,
    pub(super) geometry: Geometry,
    pub(super) segment: Arc<SegmentRead>,
    pub(super) unit: SegmentSpan,
    pub(super) range: Range<u64>,
}

impl UnitRead {
    /// The healthy path: byte ranges of the data fragments, opened in place.
    pub(super) async fn healthy(self, hold: ReadHold) -> Result<Outcome> {
        let fragments: Vec<&FragmentRecord> = self.segment.fragments.iter().collect();
        let cipher_bytes = match fetch_span(&self.svc, &self.geometry, &fragments, &self.unit).await
        {
            Ok(bytes) => bytes,
            Err((err, suspects)) => return Ok(Outcome::Failed { err, suspects }),
        };
        let hold = hold.keep(cipher_bytes.len());
        let opened = open_span(
            &self.e.cipher,
            PooledBuf::unpooled(cipher_bytes),
            0,
            self.unit.first_chunk,
            self.geometry.chunk_count(),
            &self.range,
        )
        .await;
        Ok(match opened {
            Ok((buf, window)) => Outcome::Plain(hold.attach(buf, window)),
            Err(err) => Outcome::Failed {
                err,
                suspects: Vec::new(),
            },
        })
    }

    /// The unit's bytes from its segment, rebuilt by the first of its units to get here.
    pub(super) async fn rebuilt(self, suspects: Vec<u32>) -> Result<Outcome> {
        let segment = &self.segment;
        let whole = segment
            .rebuilt
            .get_or_try_init(|| async {
                let hold = segment.rebuild_hold.lock().expect("poisoned").take();
                rebuild_authentic(
                    &self.svc,
                    &self.geometry,
                    &self.e,
                    segment,
                    &suspects,
                    &self.range,
                    hold.unwrap_or_default(),
                )
                .await
            })
            .await?;
        let offset = plain_window(&segment.span, &self.range).start;
        let wanted = plain_window(&self.unit, &self.range);
        Ok(Outcome::Plain(whole.slice(
            (wanted.start - offset) as usize..(wanted.end - offset) as usize,
        )))
    }
}

/// The plaintext bytes of an extent that `span`'s chunks hold, within `range`.
fn plain_window(span: &SegmentSpan, range: &Range<u64>) -> Range<u64> {
    let start = range.start.max(span.first_chunk * PLAIN_CHUNK as u64);
    let end = range.end.min((span.last_chunk + 1) * PLAIN_CHUNK as u64);
    start..end.max(start)
}

/// Buffers of at least this many sealed chunks (a rebuilt segment) are opened on two threads;
/// read units are smaller, and several of them are opened at once anyway.
const PARALLEL_OPEN_CHUNKS: usize = 2 * READ_UNIT_CHUNKS as usize;

/// Opens the sealed chunks in `buf[at..]` (starting at chunk `first_chunk`) in place; returns
/// the buffer and where in it the bytes of the extent-relative plaintext `range` now are.
pub(super) async fn open_span(
    cipher: &Arc<ChunkCipher>,
    mut whole: PooledBuf,
    at: usize,
    first_chunk: u64,
    chunk_count: u64,
    range: &Range<u64>,
) -> Result<(PooledBuf, Range<usize>)> {
    let cipher = cipher.clone();
    let range = range.clone();
    tokio::task::spawn_blocking(move || {
        let buf = &mut whole[at..];
        let open = |part: &mut [u8], first: u64| -> Result<()> {
            for (i, chunk) in part.chunks_mut(CIPHER_CHUNK).enumerate() {
                let index = first + i as u64;
                cipher.open(index, index + 1 == chunk_count, chunk)?;
            }
            Ok(())
        };
        let chunks = buf.len().div_ceil(CIPHER_CHUNK);
        if chunks >= PARALLEL_OPEN_CHUNKS {
            let (front, back) = buf.split_at_mut(chunks / 2 * CIPHER_CHUNK);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| open(back, first_chunk + (chunks / 2) as u64));
                let mine = open(front, first_chunk);
                mine.and(other.join().expect("chunk opening thread"))
            })?;
        } else {
            open(buf, first_chunk)?;
        }
        // Slide the plaintexts together over the tags, keeping the requested range.
        let mut write = 0usize;
        let mut plain_start = first_chunk * PLAIN_CHUNK as u64;
        let mut out_start = None;
        let mut out_end = 0usize;
        for read in (0..buf.len()).step_by(CIPHER_CHUNK) {
            let n = (buf.len() - read).min(CIPHER_CHUNK) - TAG_LEN;
            buf.copy_within(read..read + n, write);
            let lo = range.start.max(plain_start);
            let hi = range.end.min(plain_start + n as u64);
            if lo < hi {
                out_start.get_or_insert(write + (lo - plain_start) as usize);
                out_end = write + (hi - plain_start) as usize;
            }
            write += n;
            plain_start += n as u64;
        }
        let start = out_start.unwrap_or(0);
        Ok((whole, at + start..at + out_end.max(start)))
    })
    .await?
}

/// The healthy path: byte ranges of the data fragments, fetched in parallel, each within the
/// fragment read timeout. On failure, says which fragments were at fault.
async fn fetch_span(
    svc: &Arc<Inner>,
    g: &Geometry,
    fragments: &[&FragmentRecord],
    span: &SegmentSpan,
) -> Result<Vec<u8>, (Error, Vec<u32>)> {
    let timeout = svc.cfg.fragment_read_timeout;
    let reads = g
        .fragment_ranges(span.segment_len, &span.cipher)
        .into_iter()
        .map(|(j, r)| async move {
            let result = match fragments.get(j).filter(|f| f.idx as usize == j) {
                None => Err(Error::DataLoss(format!("fragment {j} is not recorded"))),
                Some(f) => match tokio::time::timeout(timeout, fetch_range(svc, f, r)).await {
                    Ok(result) => result,
                    Err(_) => Err(timed_out(f, timeout)),
                },
            };
            (j as u32, result)
        });
    let results = futures::future::join_all(reads).await;
    let suspects: Vec<u32> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(j, _)| *j)
        .collect();
    let mut pieces = Vec::with_capacity(results.len());
    for (_, result) in results {
        match result {
            Ok(bytes) => pieces.push(bytes),
            Err(e) => return Err((e, suspects)),
        }
    }
    if let [_] = &pieces[..] {
        // Most units lie within one fragment. Its bytes are taken over rather than copied when
        // nothing else shares them (a local store's read is a buffer of its own).
        return Ok(Vec::from(pieces.pop().expect("one piece")));
    }
    let mut out = Vec::with_capacity((span.cipher.end - span.cipher.start) as usize);
    for piece in pieces {
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

pub(super) fn timed_out(f: &FragmentRecord, timeout: std::time::Duration) -> Error {
    Error::Store(StoreError::TimedOut {
        store: f.store.clone(),
        operation: "read",
        after: timeout,
    })
}

async fn fetch_range(svc: &Arc<Inner>, f: &FragmentRecord, r: Range<u64>) -> Result<Bytes> {
    let store = svc
        .stores
        .by_id(&f.store)
        .ok_or_else(|| Error::DataLoss(format!("store {} is not configured", f.store)))?;
    let len = r.end - r.start;
    let bytes = store.get(f.hash, Some(r)).await?;
    if bytes.len() as u64 != len {
        return Err(Error::DataLoss(format!(
            "short read from store {}",
            f.store
        )));
    }
    Ok(bytes)
}
