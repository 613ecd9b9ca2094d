//! The degraded read path: a segment's ciphertext rebuilt from any k readable fragments, then
//! authenticated by its GCM tags.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::buffers::PooledBuf;
use super::layout::Geometry;
use super::read::{ReadableExtent, SegmentRead};
use super::read_memory::ReadHold;
use super::unit::{open_span, timed_out};
use super::{Error, Inner, Result};
use crate::catalogue::{ExtentRecord, FragmentRecord};
use crate::erasure;
use crate::store::FragmentHash;

/// Read memory a rebuild of a segment of `segment_len` bytes holds: its k fragments and the
/// segment buffer they are decoded into.
pub(super) fn rebuild_bytes(g: &Geometry, segment_len: u64) -> usize {
    2 * (g.k * g.fragment_len(segment_len)) as usize
}

/// Rebuilds a segment and returns its plaintext within `range`, holding `hold` while it works
/// and the segment's share of it for as long as the plaintext lives. The first pass decodes
/// from whatever fragments read and lets the GCM tags judge; only if they fail is every
/// fragment's hash checked, to find and skip the corrupt ones.
pub(super) async fn rebuild_authentic(
    svc: &Arc<Inner>,
    geometry: &Geometry,
    e: &ReadableExtent,
    segment: &SegmentRead,
    suspects: &[u32],
    range: &Range<u64>,
    hold: ReadHold,
) -> Result<Bytes> {
    let span = &segment.span;
    let fragments: Vec<&FragmentRecord> = segment.fragments.iter().collect();
    let fragments = &fragments[..];
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
    // The fragments are gone once decoded; the segment stays until its last unit is sent.
    let segment_bytes = rebuild_bytes(geometry, span.segment_len) / 2;
    match authenticate(rebuild(false).await?).await {
        Ok((buf, window)) => return Ok(hold.keep(segment_bytes).attach(buf, window)),
        Err(err) => {
            tracing::warn!(segment = span.segment, error = %err, "rebuilt segment fails authentication: checking fragment hashes")
        }
    }
    let (buf, window) = authenticate(rebuild(true).await?).await?;
    Ok(hold.keep(segment_bytes).attach(buf, window))
}

/// Rebuilds a whole segment's ciphertext from any k readable fragments (whose content hash
/// checks out, with `verify`), trying data fragments first and `suspects` (fragment indexes that
/// failed, or sit on stores that did) last.
async fn rebuild_segment<'a>(
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
