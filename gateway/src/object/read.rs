//! The download pipeline: a plaintext range -> the chunks and segments that hold it -> byte
//! ranges of data fragments, fetched in parallel -> chunks opened (which authenticates them) ->
//! the requested bytes. A missing, failing or corrupt fragment sends the segment down the
//! degraded path: whole fragments are fetched, checked against their content hash, and the data
//! rebuilt from any k good ones.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::buffers::{PoolUser, PooledBuf};
use super::layout::{Geometry, SegmentSpan};
use super::lease::ReadLease;
use super::{BodyError, ByteStream, Error, Inner, Result};
use crate::catalogue::{ExtentRecord, FragmentRecord};
use crate::crypto::ChunkCipher;
use crate::crypto::envelope::{CIPHER_CHUNK, PLAIN_CHUNK, TAG_LEN};
use crate::erasure;
use crate::store::{FragmentHash, StoreError};

/// Decrypted units buffered ahead of the client.
const READ_AHEAD: usize = 2;
/// Sealed chunks per read unit (4 MiB of ciphertext).
const READ_UNIT_CHUNKS: u64 = 64;
/// Units of one segment fetched and opened at once.
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
    let chunk_count = geometry.chunk_count();
    if let Some(inline) = &e.extent.inline_data {
        let first = range.start / PLAIN_CHUNK as u64;
        let last = (range.end - 1) / PLAIN_CHUNK as u64;
        let start = first as usize * CIPHER_CHUNK;
        let end = ((last as usize + 1) * CIPHER_CHUNK).min(inline.len());
        let cipher_bytes = inline
            .get(start..end)
            .ok_or_else(|| Error::DataLoss("inline data is truncated".into()))?;
        let cipher_bytes = PooledBuf::unpooled(cipher_bytes.to_vec());
        let plain = open_span(&e.cipher, cipher_bytes, 0, first, chunk_count, &range).await?;
        let _ = tx.send(Ok(plain)).await;
        return Ok(());
    }
    // The units of every segment in order, a few in flight at once (across segment boundaries,
    // so the next segment is already being read while the last units of one go out). The units
    // of a segment share its rebuild: the first to fail rebuilds the segment from parity, the
    // others take their bytes from it.
    let degraded = Arc::new(std::sync::OnceLock::new());
    let segments = geometry.spans(range.clone()).into_iter().map(|span| {
        let fragments = e
            .extent
            .fragments
            .iter()
            .filter(|f| f.segment == span.segment)
            .cloned()
            .collect();
        Arc::new(SegmentRead {
            span,
            fragments,
            rebuilt: tokio::sync::OnceCell::new(),
            degraded: degraded.clone(),
        })
    });
    let reads = segments.flat_map(|segment| {
        let units = segment.span.split(READ_UNIT_CHUNKS);
        let (svc, e, range) = (svc.clone(), e.clone(), range.clone());
        units.into_iter().map(move |unit| {
            read_unit(
                svc.clone(),
                e.clone(),
                geometry,
                segment.clone(),
                unit,
                range.clone(),
            )
        })
    });
    let mut results = futures::stream::iter(reads).buffered(READ_UNITS_IN_FLIGHT);
    while let Some(plain) = results.next().await {
        if tx.send(Ok(plain?)).await.is_err() {
            return Ok(()); // the client went away
        }
    }
    Ok(())
}

/// One segment of a read: its span, its fragments, and its plaintext once rebuilt (the part of
/// it within the requested range), if a unit of it had to be.
struct SegmentRead {
    span: SegmentSpan,
    fragments: Vec<FragmentRecord>,
    rebuilt: tokio::sync::OnceCell<Bytes>,
    /// Set by the read's first rebuild and shared by all its segments: keeps the segment
    /// buffers of rebuilds for the next one rather than mapping fresh ones each time.
    degraded: Arc<std::sync::OnceLock<PoolUser>>,
}

/// Reads the plaintext of one unit (a few MiB of a segment) within `range`: from byte ranges
/// of the data fragments, or, if that fails, from the segment rebuilt from parity.
async fn read_unit(
    svc: Arc<Inner>,
    e: ReadableExtent,
    geometry: Geometry,
    segment: Arc<SegmentRead>,
    unit: SegmentSpan,
    range: Range<u64>,
) -> Result<Bytes> {
    let offset = plain_window(&segment.span, &range).start;
    let wanted = plain_window(&unit, &range);
    let slice = |whole: &Bytes| {
        whole.slice((wanted.start - offset) as usize..(wanted.end - offset) as usize)
    };
    // Once a segment is rebuilt, its remaining units come from that, not from stores that
    // already failed (a hanging one would cost each unit the read timeout).
    if let Some(whole) = segment.rebuilt.get() {
        return Ok(slice(whole));
    }
    let fragments: Vec<&FragmentRecord> = segment.fragments.iter().collect();
    let chunk_count = geometry.chunk_count();
    let (err, suspects) = match fetch_span(&svc, &geometry, &fragments, &unit).await {
        Ok(cipher_bytes) => {
            match open_span(
                &e.cipher,
                PooledBuf::unpooled(cipher_bytes),
                0,
                unit.first_chunk,
                chunk_count,
                &range,
            )
            .await
            {
                Ok(plain) => return Ok(plain),
                Err(err) => (err, Vec::new()),
            }
        }
        Err(failure) => failure,
    };
    let whole = segment
        .rebuilt
        .get_or_try_init(|| async {
            tracing::warn!(segment = segment.span.segment, error = %err, "degraded read: rebuilding the segment from parity");
            segment.degraded.get_or_init(|| svc.buffers.user());
            rebuild_authentic(&svc, &geometry, &e, &fragments, &segment.span, &suspects, &range)
                .await
        })
        .await?;
    Ok(slice(whole))
}

/// The plaintext bytes of an extent that `span`'s chunks hold, within `range`.
fn plain_window(span: &SegmentSpan, range: &Range<u64>) -> Range<u64> {
    let start = range.start.max(span.first_chunk * PLAIN_CHUNK as u64);
    let end = range.end.min((span.last_chunk + 1) * PLAIN_CHUNK as u64);
    start..end.max(start)
}

/// Rebuilds a segment and returns its plaintext within `range`. The first pass decodes from
/// whatever fragments read and lets the GCM tags judge; only if they fail is every fragment's
/// hash checked, to find and skip the corrupt ones.
async fn rebuild_authentic(
    svc: &Arc<Inner>,
    geometry: &Geometry,
    e: &ReadableExtent,
    fragments: &[&FragmentRecord],
    span: &SegmentSpan,
    suspects: &[u32],
    range: &Range<u64>,
) -> Result<Bytes> {
    let rebuild = |verify| {
        rebuild_segment(
            svc,
            geometry,
            &e.extent,
            fragments,
            span.segment_len,
            suspects,
            verify,
        )
    };
    let authenticate = |mut whole: PooledBuf| {
        whole.resize(span.cipher.end as usize);
        open_span(
            &e.cipher,
            whole,
            span.cipher.start as usize,
            span.first_chunk,
            geometry.chunk_count(),
            range,
        )
    };
    match authenticate(rebuild(false).await?).await {
        Ok(plain) => return Ok(plain),
        Err(err) => {
            tracing::warn!(segment = span.segment, error = %err, "rebuilt segment fails authentication: checking fragment hashes")
        }
    }
    authenticate(rebuild(true).await?).await
}

/// Buffers of at least this many sealed chunks (a rebuilt segment) are opened on two threads;
/// read units are smaller, and several of them are opened at once anyway.
const PARALLEL_OPEN_CHUNKS: usize = 2 * READ_UNIT_CHUNKS as usize;

/// Opens the sealed chunks in `buf[at..]` (starting at chunk `first_chunk`) in place and keeps
/// the bytes of the extent-relative plaintext `range`.
async fn open_span(
    cipher: &Arc<ChunkCipher>,
    mut whole: PooledBuf,
    at: usize,
    first_chunk: u64,
    chunk_count: u64,
    range: &Range<u64>,
) -> Result<Bytes> {
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
        Ok(whole
            .into_bytes()
            .slice(at + start..at + out_end.max(start)))
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
    let mut out = Vec::with_capacity((span.cipher.end - span.cipher.start) as usize);
    let mut first_error = None;
    for (_, result) in results {
        match result {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(out),
        Some(e) => Err((e, suspects)),
    }
}

fn timed_out(f: &FragmentRecord, timeout: std::time::Duration) -> Error {
    Error::Store(StoreError::Unavailable {
        store: f.store.clone(),
        reason: format!("no answer within {timeout:?}"),
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

/// The degraded path: rebuilds a whole segment's ciphertext from any k readable fragments
/// (whose content hash checks out, with `verify`), trying data fragments first and `suspects`
/// (fragment indexes that just failed) last.
pub(crate) async fn rebuild_segment<'a>(
    svc: &Arc<Inner>,
    g: &Geometry,
    extent: &ExtentRecord,
    fragments: &[&'a FragmentRecord],
    segment_len: u64,
    suspects: &[u32],
    verify: bool,
) -> Result<PooledBuf> {
    let (k, m) = (extent.k as usize, extent.m as usize);
    let mut shards: Vec<Option<Vec<u8>>> = vec![None; k + m];
    let mut good = 0;
    let mut ordered: Vec<&FragmentRecord> = fragments
        .iter()
        .copied()
        .filter(|f| (f.idx as usize) < k + m)
        .collect();
    ordered.sort_by_key(|f| (suspects.contains(&f.idx), f.idx));
    // k reads in flight; each one that fails is replaced by the next candidate at once, rather
    // than waiting for the rest of its batch.
    let fetch = |f: &'a FragmentRecord| async move { (f, fetch_whole(svc, f, verify).await) };
    let mut candidates = ordered.into_iter();
    let mut reads: futures::stream::FuturesUnordered<_> =
        candidates.by_ref().take(k).map(fetch).collect();
    while good < k {
        let Some((f, result)) = reads.next().await else {
            return Err(Error::DataLoss(format!(
                "only {good} of the {k} fragments needed are readable"
            )));
        };
        match result {
            Ok(bytes) => {
                shards[f.idx as usize] = Some(bytes);
                good += 1;
            }
            Err(err) => {
                tracing::warn!(store = %f.store, fragment = %f.hash, error = %err, "fragment unusable");
                if let Some(next) = candidates.next() {
                    reads.push(fetch(next));
                }
            }
        }
    }
    drop(reads);
    let codec = svc.codecs.get(k, m)?;
    let f_len = g.fragment_len(segment_len) as usize;
    let (pool, segment_size) = (svc.buffers.clone(), g.segment_size() as usize);
    tokio::task::spawn_blocking(move || {
        if shards
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.len() != f_len))
        {
            return Err(Error::DataLoss("fragment has the wrong length".into()));
        }
        // Data fragments land in their place in the output, the missing ones decoded there:
        // every byte is written, so a reused buffer need not be cleared.
        let mut out = pool.take(segment_size).map_err(Error::Buffers)?;
        out.resize_for_overwrite(k * f_len);
        let (data, parity) = shards.split_at_mut(k);
        let mut slots: Vec<(&mut [u8], bool)> = Vec::with_capacity(k + m);
        for (place, shard) in out.chunks_mut(f_len).zip(data.iter()) {
            if let Some(shard) = shard {
                place.copy_from_slice(shard);
            }
            slots.push((place, shard.is_some()));
        }
        for shard in parity.iter_mut() {
            match shard {
                Some(shard) => slots.push((shard.as_mut_slice(), true)),
                None => slots.push((&mut [], false)),
            }
        }
        erasure::reconstruct_data(&codec, &mut slots)?;
        out.resize(segment_len as usize);
        Ok(out)
    })
    .await?
}

async fn fetch_whole(svc: &Arc<Inner>, f: &FragmentRecord, verify: bool) -> Result<Vec<u8>> {
    let store = svc
        .stores
        .by_id(&f.store)
        .ok_or_else(|| Error::DataLoss(format!("store {} is not configured", f.store)))?;
    let timeout = svc.cfg.fragment_read_timeout;
    let bytes = tokio::time::timeout(timeout, store.get(f.hash, None))
        .await
        .map_err(|_| timed_out(f, timeout))??;
    if !verify {
        return Ok(Vec::from(bytes));
    }
    let expected = f.hash;
    tokio::task::spawn_blocking(move || {
        if FragmentHash::of(&bytes) == expected {
            Ok(Vec::from(bytes))
        } else {
            Err(Error::DataLoss(format!(
                "fragment {expected} fails its hash check"
            )))
        }
    })
    .await?
}
