//! The download pipeline: a plaintext range -> the chunks and segments that hold it -> byte
//! ranges of data fragments, fetched in parallel -> chunks opened (which authenticates them) ->
//! the requested bytes. A missing, failing or corrupt fragment sends the segment down the
//! degraded path: whole fragments are fetched, checked against their content hash, and the data
//! rebuilt from any k good ones.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::layout::{Geometry, SegmentSpan};
use super::{BodyError, ByteStream, Error, Inner, Result};
use crate::catalogue::{ExtentRecord, FragmentRecord};
use crate::crypto::ChunkCipher;
use crate::crypto::envelope::{CIPHER_CHUNK, PLAIN_CHUNK};
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
pub(crate) fn stream(
    svc: Arc<Inner>,
    extents: Vec<ReadableExtent>,
    range: Range<u64>,
) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, BodyError>>(READ_AHEAD);
    tokio::spawn(async move {
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
        let plain = open_span(&e.cipher, cipher_bytes.to_vec(), first, chunk_count, &range).await?;
        let _ = tx.send(Ok(plain)).await;
        return Ok(());
    }
    for span in geometry.spans(range.clone()) {
        let fragments: Vec<&FragmentRecord> = e
            .extent
            .fragments
            .iter()
            .filter(|f| f.segment == span.segment)
            .collect();
        // The segment is read in units of a few MiB, several at once: memory stays small
        // whatever the segment size, and the data fragments are still read in parallel.
        let reads = span.split(READ_UNIT_CHUNKS).into_iter().map(|unit| {
            let fragments = &fragments;
            let geometry = &geometry;
            let range = &range;
            async move {
                match fetch_span(svc, geometry, fragments, &unit).await {
                    Ok(cipher_bytes) => open_span(
                        &e.cipher,
                        cipher_bytes,
                        unit.first_chunk,
                        chunk_count,
                        range,
                    )
                    .await
                    .map_err(|err| (unit, err, Vec::new())),
                    Err((err, suspects)) => Err((unit, err, suspects)),
                }
            }
        });
        let mut results = futures::stream::iter(reads).buffered(READ_UNITS_IN_FLIGHT);
        // Rebuilt at most once per segment, on the first unit that needs it.
        let mut rebuilt: Option<Vec<u8>> = None;
        while let Some(result) = results.next().await {
            let plain = match result {
                Ok(plain) => plain,
                Err((unit, err, suspects)) => {
                    if rebuilt.is_none() {
                        tracing::warn!(segment = span.segment, error = %err, "degraded read: rebuilding the segment from parity");
                        rebuilt = Some(
                            rebuild_authentic(
                                svc, &geometry, e, &fragments, &span, &suspects, &range,
                            )
                            .await?,
                        );
                    }
                    let whole = rebuilt.as_ref().expect("rebuilt above");
                    let cipher_bytes =
                        whole[unit.cipher.start as usize..unit.cipher.end as usize].to_vec();
                    open_span(
                        &e.cipher,
                        cipher_bytes,
                        unit.first_chunk,
                        chunk_count,
                        &range,
                    )
                    .await?
                }
            };
            if tx.send(Ok(plain)).await.is_err() {
                return Ok(()); // the client went away
            }
        }
    }
    Ok(())
}

/// Rebuilds a segment whose ciphertext authenticates. The first pass decodes from whatever
/// fragments read and lets the GCM tags judge; only if they fail is every fragment's hash
/// checked, to find and skip the corrupt ones.
async fn rebuild_authentic(
    svc: &Arc<Inner>,
    geometry: &Geometry,
    e: &ReadableExtent,
    fragments: &[&FragmentRecord],
    span: &SegmentSpan,
    suspects: &[u32],
    range: &Range<u64>,
) -> Result<Vec<u8>> {
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
    let authenticate = |whole: &[u8]| {
        let cipher_bytes = whole[span.cipher.start as usize..span.cipher.end as usize].to_vec();
        open_span(
            &e.cipher,
            cipher_bytes,
            span.first_chunk,
            geometry.chunk_count(),
            range,
        )
    };
    let quick = rebuild(false).await?;
    match authenticate(&quick).await {
        Ok(_) => return Ok(quick),
        Err(err) => {
            tracing::warn!(segment = span.segment, error = %err, "rebuilt segment fails authentication: checking fragment hashes")
        }
    }
    let verified = rebuild(true).await?;
    authenticate(&verified).await?;
    Ok(verified)
}

/// Opens the sealed chunks `cipher_bytes` (starting at chunk `first_chunk`) and keeps the bytes
/// of the extent-relative plaintext `range`.
async fn open_span(
    cipher: &Arc<ChunkCipher>,
    mut buf: Vec<u8>,
    first_chunk: u64,
    chunk_count: u64,
    range: &Range<u64>,
) -> Result<Bytes> {
    let cipher = cipher.clone();
    let range = range.clone();
    tokio::task::spawn_blocking(move || {
        // Open each chunk in place, then slide the plaintexts together over the tags.
        let mut write = 0usize;
        let mut read = 0usize;
        let mut chunk = first_chunk;
        let mut plain_start = first_chunk * PLAIN_CHUNK as u64;
        let mut out_start = None;
        let mut out_end = 0usize;
        while read < buf.len() {
            let end = (read + CIPHER_CHUNK).min(buf.len());
            let n = cipher.open(chunk, chunk + 1 == chunk_count, &mut buf[read..end])?;
            buf.copy_within(read..read + n, write);
            // Trim to the requested range.
            let lo = range.start.max(plain_start);
            let hi = range.end.min(plain_start + n as u64);
            if lo < hi {
                out_start.get_or_insert(write + (lo - plain_start) as usize);
                out_end = write + (hi - plain_start) as usize;
            }
            write += n;
            read = end;
            chunk += 1;
            plain_start += n as u64;
        }
        let start = out_start.unwrap_or(0);
        Ok(Bytes::from(buf).slice(start..out_end.max(start)))
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
pub(crate) async fn rebuild_segment(
    svc: &Arc<Inner>,
    g: &Geometry,
    extent: &ExtentRecord,
    fragments: &[&FragmentRecord],
    segment_len: u64,
    suspects: &[u32],
    verify: bool,
) -> Result<Vec<u8>> {
    let (k, m) = (extent.k as usize, extent.m as usize);
    let mut shards: Vec<Option<Vec<u8>>> = vec![None; k + m];
    let mut good = 0;
    let mut ordered: Vec<&FragmentRecord> = fragments
        .iter()
        .copied()
        .filter(|f| (f.idx as usize) < k + m)
        .collect();
    ordered.sort_by_key(|f| (suspects.contains(&f.idx), f.idx));
    let mut candidates = ordered.into_iter();
    while good < k {
        let wave: Vec<&FragmentRecord> = candidates.by_ref().take(k - good).collect();
        if wave.is_empty() {
            return Err(Error::DataLoss(format!(
                "only {good} of the {k} fragments needed are readable"
            )));
        }
        let fetched =
            futures::future::join_all(wave.iter().map(|f| fetch_whole(svc, f, verify))).await;
        for (f, result) in wave.iter().zip(fetched) {
            match result {
                Ok(bytes) => {
                    shards[f.idx as usize] = Some(bytes);
                    good += 1;
                }
                Err(err) => {
                    tracing::warn!(store = %f.store, fragment = %f.hash, error = %err, "fragment unusable")
                }
            }
        }
    }
    let codec = svc.codecs.get(k, m)?;
    let f_len = g.fragment_len(segment_len) as usize;
    tokio::task::spawn_blocking(move || {
        if shards
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.len() != f_len))
        {
            return Err(Error::DataLoss("fragment has the wrong length".into()));
        }
        erasure::reconstruct_data(&codec, &mut shards)?;
        let mut out = Vec::with_capacity(k * f_len);
        for s in shards.iter().take(k) {
            out.extend_from_slice(s.as_ref().expect("reconstructed"));
        }
        out.truncate(segment_len as usize);
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
