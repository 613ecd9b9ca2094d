//! Where bytes live: plaintext offsets -> sealed chunks -> segments -> byte ranges of data
//! fragments. Pure arithmetic, shared by the writer and the reader.
//!
//! An extent's ciphertext is the concatenation of its sealed chunks. It is cut into segments of
//! `k * fragment_size` bytes (a whole number of chunks; the last segment is shorter and not
//! padded), and data fragment `j` of a segment holds bytes `[j*F, (j+1)*F)` of it, where
//! `F = ceil(segment_len / k)` (only the last data fragment of a short segment is zero-padded).

use std::ops::Range;

use crate::crypto::envelope::{CIPHER_CHUNK, PLAIN_CHUNK, chunk_count, cipher_len};

/// The geometry of one extent.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub plain_len: u64,
    pub k: u64,
    pub fragment_size: u64,
}

/// The part of one segment a read needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSpan {
    pub segment: u32,
    /// Ciphertext length of the whole segment.
    pub segment_len: u64,
    /// First and last (inclusive) chunk index within the extent.
    pub first_chunk: u64,
    pub last_chunk: u64,
    /// Ciphertext byte range within the segment covering those chunks.
    pub cipher: Range<u64>,
}

impl SegmentSpan {
    /// Cuts the span into pieces of at most `max_chunks` sealed chunks each.
    pub fn split(&self, max_chunks: u64) -> Vec<SegmentSpan> {
        let mut out = Vec::new();
        let mut first = self.first_chunk;
        let mut start = self.cipher.start;
        while first <= self.last_chunk {
            let last = (first + max_chunks - 1).min(self.last_chunk);
            let end = (start + (last - first + 1) * CIPHER_CHUNK as u64).min(self.cipher.end);
            out.push(SegmentSpan {
                first_chunk: first,
                last_chunk: last,
                cipher: start..end,
                ..self.clone()
            });
            first = last + 1;
            start = end;
        }
        out
    }
}

impl Geometry {
    pub fn segment_size(&self) -> u64 {
        self.k * self.fragment_size
    }

    pub fn cipher_len(&self) -> u64 {
        cipher_len(self.plain_len)
    }

    pub fn chunk_count(&self) -> u64 {
        chunk_count(self.plain_len)
    }

    pub fn segment_count(&self) -> u64 {
        self.cipher_len().div_ceil(self.segment_size())
    }

    pub fn segment_len(&self, segment: u64) -> u64 {
        let start = segment * self.segment_size();
        self.segment_size().min(self.cipher_len() - start)
    }

    pub fn fragment_len(&self, segment_len: u64) -> u64 {
        segment_len.div_ceil(self.k)
    }

    /// Plaintext length of chunk `i`.
    pub fn chunk_plain_len(&self, i: u64) -> u64 {
        (self.plain_len - i * PLAIN_CHUNK as u64).min(PLAIN_CHUNK as u64)
    }

    /// The segments, and the chunks within them, that hold plaintext bytes `range`
    /// (non-empty, within the extent).
    pub fn spans(&self, range: Range<u64>) -> Vec<SegmentSpan> {
        debug_assert!(range.start < range.end && range.end <= self.plain_len);
        let first = range.start / PLAIN_CHUNK as u64;
        let last = (range.end - 1) / PLAIN_CHUNK as u64;
        let per_segment = self.segment_size() / CIPHER_CHUNK as u64;
        let mut spans = Vec::new();
        let mut chunk = first;
        while chunk <= last {
            let segment = chunk / per_segment;
            let seg_last = ((segment + 1) * per_segment - 1).min(last);
            let seg_first_chunk = segment * per_segment;
            let segment_len = self.segment_len(segment);
            let start = (chunk - seg_first_chunk) * CIPHER_CHUNK as u64;
            let end = ((seg_last - seg_first_chunk + 1) * CIPHER_CHUNK as u64).min(segment_len);
            spans.push(SegmentSpan {
                segment: segment as u32,
                segment_len,
                first_chunk: chunk,
                last_chunk: seg_last,
                cipher: start..end,
            });
            chunk = seg_last + 1;
        }
        spans
    }

    /// For a ciphertext range within a segment: which data fragments hold it, and the byte
    /// range of each.
    pub fn fragment_ranges(
        &self,
        segment_len: u64,
        cipher: &Range<u64>,
    ) -> Vec<(usize, Range<u64>)> {
        let f = self.fragment_len(segment_len);
        (0..self.k)
            .filter_map(|j| {
                let lo = cipher.start.max(j * f);
                let hi = cipher.end.min((j + 1) * f);
                (lo < hi).then(|| (j as usize, lo - j * f..hi - j * f))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn cess(plain_len: u64) -> Geometry {
        Geometry {
            plain_len,
            k: 4,
            fragment_size: 8 * MIB,
        }
    }

    #[test]
    fn segments_of_cess_objects() {
        let full_plain = 512 * PLAIN_CHUNK as u64; // exactly one 32 MiB segment of ciphertext
        let g = cess(full_plain);
        assert_eq!(g.cipher_len(), 32 * MIB);
        assert_eq!(g.segment_count(), 1);
        let g = cess(full_plain + 1);
        assert_eq!(g.segment_count(), 2);
        assert_eq!(g.segment_len(1), 17); // one byte + its tag: the last segment is not padded
        assert_eq!(g.fragment_len(17), 5);
    }

    #[test]
    fn spans_cover_exactly_the_needed_chunks() {
        let g = cess(3 * 512 * PLAIN_CHUNK as u64);
        let spans = g.spans(0..g.plain_len);
        assert_eq!(spans.len(), 3);
        assert!(spans.iter().all(|s| s.cipher == (0..32 * MIB)));
        // A range inside chunk 513 (second segment, second chunk).
        let off = 513 * PLAIN_CHUNK as u64 + 10;
        let spans = g.spans(off..off + 5);
        assert_eq!(
            spans,
            vec![SegmentSpan {
                segment: 1,
                segment_len: 32 * MIB,
                first_chunk: 513,
                last_chunk: 513,
                cipher: CIPHER_CHUNK as u64..2 * CIPHER_CHUNK as u64,
            }]
        );
        // Straddling the segment boundary.
        let b = 512 * PLAIN_CHUNK as u64;
        let spans = g.spans(b - 1..b + 1);
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].first_chunk, spans[1].first_chunk), (511, 512));
    }

    #[test]
    fn fragment_ranges_split_across_data_fragments() {
        let g = cess(3 * 512 * PLAIN_CHUNK as u64);
        let f = 8 * MIB;
        let r = g.fragment_ranges(32 * MIB, &(f - 10..f + 10));
        assert_eq!(r, vec![(0, f - 10..f), (1, 0..10)]);
        let r = g.fragment_ranges(32 * MIB, &(0..32 * MIB));
        assert_eq!(r.len(), 4);
        // A short last segment: 17 bytes over 4 fragments of 5.
        assert_eq!(
            g.fragment_ranges(17, &(0..17)),
            vec![(0, 0..5), (1, 0..5), (2, 0..5), (3, 0..2)]
        );
    }

    #[test]
    fn spans_split_into_units() {
        let g = cess(512 * PLAIN_CHUNK as u64 + 100);
        let whole = g.spans(0..g.plain_len);
        let units = whole[0].split(64);
        assert_eq!(units.len(), 8);
        assert_eq!(units[1].first_chunk, 64);
        assert_eq!(
            units[1].cipher,
            64 * CIPHER_CHUNK as u64..128 * CIPHER_CHUNK as u64
        );
        assert_eq!(units.last().unwrap().cipher.end, whole[0].cipher.end);
        // A short last segment stays one unit, its end clipped to the segment.
        let tail = whole[1].split(64);
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].cipher, whole[1].cipher);
    }

    #[test]
    fn last_chunk_lengths() {
        let g = cess(PLAIN_CHUNK as u64 + 7);
        assert_eq!(g.chunk_count(), 2);
        assert_eq!(g.chunk_plain_len(0), PLAIN_CHUNK as u64);
        assert_eq!(g.chunk_plain_len(1), 7);
    }
}
