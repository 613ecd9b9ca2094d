//! Erasure coding: profiles (k data + m parity fragments per segment) and the Reed-Solomon codec.
//!
//! The codec is `reed-solomon-erasure` (GF(2^8), SIMD-accelerated). It was chosen over
//! `reed-solomon-simd` for degraded reads: measured here it decodes 4+8 several times faster
//! (~5 GB/s against ~0.7 GB/s) while encoding about a quarter slower, and a degraded GET must stay
//! within half of a healthy one. Being a byte-wise code, any column range of a segment encodes and
//! decodes alone, which is what lets parity be computed in cache-sized column slices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::crypto::envelope::CIPHER_CHUNK;

/// Parity is computed in column slices of this size: the working set of one slice across all
/// shards stays in cache, which measured about twice as fast as whole 8 MiB shards.
const ENCODE_SLICE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error("unknown erasure profile {0:?}: use cess, 4+2, 10+4 or k+m (e.g. 6+3)")]
    Unknown(String),
    #[error("erasure profile {0:?}: k and m must be at least 1 and k+m at most 64")]
    OutOfRange(String),
}

/// How a segment is cut: `k` data and `m` parity fragments of `fragment_size` bytes each
/// (the segment holds `k * fragment_size` bytes of ciphertext; the last one of an object is shorter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub k: usize,
    pub m: usize,
    pub fragment_size: usize,
}

/// Fragment size of the CESS profile: 8 MiB fragments, 32 MiB segments, as the CESS runtime
/// expects. // format constant: never change
pub const CESS_FRAGMENT_SIZE: usize = 8 * 1024 * 1024;
/// Fragment size of every other profile.
pub const DEFAULT_FRAGMENT_SIZE: usize = 4 * 1024 * 1024;

impl Profile {
    /// Parses a profile name: `cess` (4+8, 8 MiB fragments), `4+2`, `10+4`, or any `k+m`.
    pub fn parse(name: &str) -> Result<Self, ProfileError> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("cess") {
            return Ok(Self {
                name: "cess".into(),
                k: 4,
                m: 8,
                fragment_size: CESS_FRAGMENT_SIZE,
            });
        }
        let (k, m) = name
            .split_once('+')
            .ok_or_else(|| ProfileError::Unknown(name.into()))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| ProfileError::Unknown(name.to_string()))
        };
        let (k, m) = (parse(k)?, parse(m)?);
        if k == 0 || m == 0 || k + m > 64 {
            return Err(ProfileError::OutOfRange(name.into()));
        }
        Ok(Self {
            name: format!("{k}+{m}"),
            k,
            m,
            fragment_size: DEFAULT_FRAGMENT_SIZE,
        })
    }

    pub fn total(&self) -> usize {
        self.k + self.m
    }

    /// Ciphertext bytes in a full segment; always a whole number of sealed chunks.
    pub fn segment_size(&self) -> u64 {
        (self.k * self.fragment_size) as u64
    }

    /// Sealed chunks in a full segment.
    pub fn chunks_per_segment(&self) -> u64 {
        self.segment_size() / CIPHER_CHUNK as u64
    }

    /// Length of each fragment of a segment holding `segment_len` ciphertext bytes.
    pub fn fragment_len(&self, segment_len: u64) -> usize {
        segment_len.div_ceil(self.k as u64) as usize
    }
}

/// A Reed-Solomon coder for one (k, m).
pub type Codec = ReedSolomon;

type CodecCache = HashMap<(usize, usize), Arc<Codec>>;

/// Reed-Solomon coders, built once per (k, m).
#[derive(Debug, Default, Clone)]
pub struct Codecs {
    cache: Arc<Mutex<CodecCache>>,
}

#[derive(Debug, thiserror::Error)]
#[error("erasure coding failed: {0}")]
pub struct CodingError(String);

impl Codecs {
    pub fn get(&self, k: usize, m: usize) -> Result<Arc<Codec>, CodingError> {
        let mut cache = self.cache.lock().expect("codec cache poisoned");
        if let Some(rs) = cache.get(&(k, m)) {
            return Ok(rs.clone());
        }
        let rs = Arc::new(ReedSolomon::new(k, m).map_err(|e| CodingError(format!("{e:?}")))?);
        cache.insert((k, m), rs.clone());
        Ok(rs)
    }
}

/// Computes the parity fragments of `data` (k equal-length shards), slice by slice.
pub fn encode(rs: &Codec, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodingError> {
    let len = data.first().map_or(0, |d| d.len());
    let mut start = 0;
    while start < len {
        let end = (start + ENCODE_SLICE).min(len);
        let cols: Vec<&[u8]> = data.iter().map(|d| &d[start..end]).collect();
        let mut out: Vec<&mut [u8]> = parity.iter_mut().map(|p| &mut p[start..end]).collect();
        rs.encode_sep(&cols, &mut out)
            .map_err(|e| CodingError(format!("{e:?}")))?;
        start = end;
    }
    Ok(())
}

/// A shard's bytes and whether they are present.
type Slot<'a> = (&'a mut [u8], bool);

/// Below this many bytes per shard a rebuild stays on one thread.
const PARALLEL_DECODE_MIN: usize = 256 * 1024;

/// Rebuilds the missing data shards (`present == false`) in place from at least k present ones.
/// Data shards and present parity shards are slices of one length; absent parity shards may be
/// empty. Columns decode independently, so a large rebuild is split over two threads.
pub fn reconstruct_data(rs: &Codec, shards: &mut [(&mut [u8], bool)]) -> Result<(), CodingError> {
    let len = shards.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let coding = |e| CodingError(format!("{e:?}"));
    if len < PARALLEL_DECODE_MIN {
        return rs.reconstruct_data(shards).map_err(coding);
    }
    let half = len / 2;
    let (mut front, mut back): (Vec<Slot<'_>>, Vec<Slot<'_>>) = shards
        .iter_mut()
        .map(|(shard, present)| {
            let (a, b) = shard.split_at_mut(half.min(shard.len()));
            ((a, *present), (b, *present))
        })
        .unzip();
    std::thread::scope(|scope| {
        let other = scope.spawn(move || rs.reconstruct_data(&mut back));
        let mine = rs.reconstruct_data(&mut front);
        mine.and(other.join().expect("decoding thread"))
    })
    .map_err(coding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse() {
        let cess = Profile::parse("cess").unwrap();
        assert_eq!(
            (cess.k, cess.m, cess.segment_size()),
            (4, 8, 32 * 1024 * 1024)
        );
        assert_eq!(cess.chunks_per_segment(), 512);
        assert_eq!(Profile::parse("10+4").unwrap().total(), 14);
        assert_eq!(Profile::parse(" 4+2 ").unwrap().name, "4+2");
        assert!(matches!(
            Profile::parse("0+3"),
            Err(ProfileError::OutOfRange(_))
        ));
        assert!(matches!(
            Profile::parse("60+10"),
            Err(ProfileError::OutOfRange(_))
        ));
        assert!(matches!(
            Profile::parse("fast"),
            Err(ProfileError::Unknown(_))
        ));
        assert_eq!(cess.fragment_len(10), 3);
    }

    #[test]
    fn encode_then_lose_m_and_rebuild() {
        let codecs = Codecs::default();
        let (k, m) = (4, 8);
        let rs = codecs.get(k, m).unwrap();
        let len = 300_001;
        let data: Vec<Vec<u8>> = (0..k)
            .map(|i| (0..len).map(|j| (i * 7 + j * 13) as u8).collect())
            .collect();
        let mut parity = vec![vec![0u8; len]; m];
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut outputs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        encode(&rs, &refs, &mut outputs).unwrap();
        // Lose every data shard and four parity shards: m losses in all. The lost data shards
        // are rebuilt into zeroed buffers; the lost parity shards need none.
        let lost = [0, 1, 2, 3, 5, 7, 9, 11];
        let mut rebuilt = vec![vec![0u8; len]; k];
        let mut slots: Vec<(&mut [u8], bool)> = rebuilt
            .iter_mut()
            .map(|d| (d.as_mut_slice(), false))
            .collect();
        for (i, p) in parity.iter_mut().enumerate() {
            if lost.contains(&(k + i)) {
                slots.push((&mut [], false));
            } else {
                slots.push((p.as_mut_slice(), true));
            }
        }
        reconstruct_data(&rs, &mut slots).unwrap();
        assert_eq!(rebuilt, data);
    }
}
