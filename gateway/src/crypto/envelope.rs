//! Chunked AES-256-GCM in the STREAM construction.
//!
//! The ciphertext of an extent (a whole object, or one multipart part) is a sequence of chunks of
//! [`CIPHER_CHUNK`] bytes (the last one shorter). Each chunk seals [`PLAIN_CHUNK`] bytes of
//! plaintext under the nonce `prefix (7) | counter (4, big endian) | last flag (1)`, with AAD that
//! binds bucket, key, version and part. So any chunk decrypts alone (range reads), and truncation
//! (no chunk carries the last flag), reordering (counter) and splicing across objects or parts
//! (AAD) all fail authentication.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, Tag, UnboundKey};

use super::CryptoError;

/// Plaintext bytes per chunk; chosen so that a sealed chunk is exactly 64 KiB and a 32 MiB
/// segment holds a whole number of chunks. // format constant: never change
pub const PLAIN_CHUNK: usize = 65_520;
/// AES-GCM tag length. // format constant: never change
pub const TAG_LEN: usize = 16;
/// Sealed chunk size. // format constant: never change
pub const CIPHER_CHUNK: usize = PLAIN_CHUNK + TAG_LEN;
/// Length of the random per-extent nonce prefix. // format constant: never change
pub const NONCE_PREFIX_LEN: usize = 7;
/// Marker at the start of the AAD. // format constant: never change
const AAD_MAGIC: &[u8] = b"deoss/stream/v1";

/// Number of chunks that seal `plain_len` bytes (an empty extent still has one final chunk).
pub fn chunk_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(PLAIN_CHUNK as u64).max(1)
}

/// Ciphertext length of an extent of `plain_len` plaintext bytes.
pub fn cipher_len(plain_len: u64) -> u64 {
    plain_len + chunk_count(plain_len) * TAG_LEN as u64
}

/// What a chunk's AAD binds it to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: &'a str,
    pub part: u32,
}

impl Binding<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_MAGIC.len() + 16 + self.bucket.len() + self.key.len());
        aad.extend_from_slice(AAD_MAGIC);
        for field in [self.bucket, self.key, self.version_id] {
            // Length-prefixed, so ("ab","c") and ("a","bc") never collide.
            aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad.extend_from_slice(&self.part.to_be_bytes());
        aad
    }
}

/// Seals and opens the chunks of one extent. The caller says which chunk is the last one: a
/// writer learns it when the body ends, a reader from the extent's recorded length.
pub struct ChunkCipher {
    key: LessSafeKey,
    prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
}

impl std::fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCipher").finish_non_exhaustive()
    }
}

impl ChunkCipher {
    /// `content_key` is the HKDF-derived content key of the object version.
    pub fn new(
        content_key: &[u8; 32],
        prefix: [u8; NONCE_PREFIX_LEN],
        binding: Binding<'_>,
    ) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, content_key).expect("32-byte key");
        Self {
            key: LessSafeKey::new(key),
            prefix,
            aad: binding.encode(),
        }
    }

    fn nonce(&self, index: u64, last: bool) -> Result<Nonce, CryptoError> {
        let counter = u32::try_from(index).map_err(|_| CryptoError::TooLarge)?;
        let mut n = [0u8; NONCE_LEN];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.prefix);
        n[NONCE_PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&counter.to_be_bytes());
        n[NONCE_LEN - 1] = u8::from(last);
        Ok(Nonce::assume_unique_for_key(n))
    }

    /// Seals chunk `index` in place: `buf` holds the plaintext followed by `TAG_LEN` spare bytes
    /// that receive the tag.
    pub fn seal(&self, index: u64, last: bool, buf: &mut [u8]) -> Result<(), CryptoError> {
        let split = buf
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::Truncated)?;
        let (plain, tag_out) = buf.split_at_mut(split);
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index, last)?, Aad::from(&self.aad), plain)
            .map_err(|_| CryptoError::Seal)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens chunk `index` in place; returns the plaintext length (`buf.len() - TAG_LEN`).
    pub fn open(&self, index: u64, last: bool, buf: &mut [u8]) -> Result<usize, CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let plain = self
            .key
            .open_in_place(self.nonce(index, last)?, Aad::from(&self.aad), buf)
            .map_err(|_| CryptoError::Authentication { chunk: index })?;
        Ok(plain.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(part: u32) -> Binding<'static> {
        Binding {
            bucket: "b",
            key: "k",
            version_id: "v",
            part,
        }
    }

    fn seal_all(c: &ChunkCipher, plain: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunks: Vec<&[u8]> = plain.chunks(PLAIN_CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        for (i, p) in chunks.into_iter().enumerate() {
            let mut buf = p.to_vec();
            buf.resize(p.len() + TAG_LEN, 0);
            c.seal(i as u64, i + 1 == n, &mut buf).unwrap();
            out.push(buf);
        }
        out
    }

    #[test]
    fn round_trip_and_lengths() {
        let key = [7u8; 32];
        for len in [
            0usize,
            1,
            PLAIN_CHUNK - 1,
            PLAIN_CHUNK,
            PLAIN_CHUNK + 1,
            3 * PLAIN_CHUNK + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let c = ChunkCipher::new(&key, [1; 7], binding(0));
            let sealed = seal_all(&c, &plain);
            let total: usize = sealed.iter().map(Vec::len).sum();
            assert_eq!(total as u64, cipher_len(len as u64));
            let count = sealed.len();
            assert_eq!(count as u64, chunk_count(len as u64));
            let mut back = Vec::new();
            for (i, mut s) in sealed.into_iter().enumerate() {
                let n = c.open(i as u64, i + 1 == count, &mut s).unwrap();
                back.extend_from_slice(&s[..n]);
            }
            assert_eq!(back, plain);
        }
    }

    #[test]
    fn truncation_reorder_and_splice_fail() {
        let key = [9u8; 32];
        let plain = vec![5u8; 3 * PLAIN_CHUNK];
        let c = ChunkCipher::new(&key, [2; 7], binding(1));
        let sealed = seal_all(&c, &plain);
        // Truncation: an extent cut after two chunks has no chunk with the last flag.
        assert!(c.open(1, true, &mut sealed[1].clone()).is_err());
        // Reordering: chunk 0 presented as chunk 1.
        assert!(c.open(1, false, &mut sealed[0].clone()).is_err());
        // Splicing into another part of the same object.
        let other = ChunkCipher::new(&key, [2; 7], binding(2));
        assert!(other.open(0, false, &mut sealed[0].clone()).is_err());
        // A flipped bit.
        let mut bad = sealed[2].clone();
        bad[10] ^= 1;
        assert!(matches!(
            c.open(2, true, &mut bad),
            Err(CryptoError::Authentication { chunk: 2 })
        ));
    }
}
