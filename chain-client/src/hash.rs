//! Fragment, segment and file hashes the way CESS writes them.
//!
//! # Byte convention (checked against CESS's own SDKs)
//!
//! - A fragment or segment hash is SHA-256 over the raw bytes, written as 64 **lowercase hex ASCII**
//!   characters. On chain the runtime's `Hash` type is `[u8; 64]` holding exactly that ASCII text,
//!   so `Hash64` stores the 64 ASCII bytes.
//! - The file id (fid, CESS "file hash") is a pairwise SHA-256 tree over the segment hashes. Each
//!   node is SHA-256 over the **decoded 32-byte digests** of its two children concatenated (the
//!   children's hex is decoded first; the hex ASCII is *not* what gets hashed), and is itself
//!   written as 64 lowercase hex characters. A level with an odd count pairs its last node with
//!   itself. Levels are built until one node remains, and at least one level is always built, so:
//!   - one segment `a`: `fid = sha256(a ‖ a)` ("the hash of the hash twice"),
//!   - two segments: `fid = sha256(a ‖ b)`,
//!   - three: `fid = sha256(sha256(a ‖ b) ‖ sha256(c ‖ c))`.
//!
//!   This is what the CESS Go SDK (which DeOSS, written in Go, builds on) computes in
//!   `BuildSimpleMerkelRootHash` (one segment) and `BuildMerkelRootHash` (several). The CESS Rust
//!   SDK's multi-segment variant hashes the second level differently; it is not followed here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// 64 lowercase hex ASCII bytes of a SHA-256 digest: CESS's on-chain `Hash` (`[u8; 64]`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash64([u8; 64]);

impl Hash64 {
    /// SHA-256 of `data`, as CESS names fragments and segments.
    pub fn of_bytes(data: &[u8]) -> Self {
        Self::from_digest(Sha256::digest(data).into())
    }

    /// Wraps a raw 32-byte SHA-256 digest.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        let mut out = [0u8; 64];
        // hex::encode_to_slice writes lowercase and cannot fail for a 64-byte buffer.
        hex::encode_to_slice(digest, &mut out).unwrap_or_default();
        Hash64(out)
    }

    /// Parses 64 hex digits (upper case is accepted and normalized to lower case).
    pub fn from_hex(text: &str) -> Result<Self> {
        let digest = hex::decode(text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| Error::invalid(format!("not a 64-hex-digit hash: {text:?}")))?;
        Ok(Self::from_digest(digest))
    }

    /// Takes the on-chain 64 bytes; they must be lowercase hex ASCII.
    pub fn from_ascii(bytes: [u8; 64]) -> Result<Self> {
        if bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            Ok(Hash64(bytes))
        } else {
            Err(Error::invalid("hash bytes are not lowercase hex ASCII"))
        }
    }

    /// The 64 ASCII bytes, as sent on chain.
    pub fn as_ascii(&self) -> &[u8; 64] {
        &self.0
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        // Only lowercase hex digits are ever stored (constructors enforce it).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The decoded 32-byte digest.
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(self.0, &mut out).unwrap_or_default();
        out
    }
}

impl fmt::Display for Hash64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Hash64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash64({})", self.as_str())
    }
}

impl FromStr for Hash64 {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::from_hex(s)
    }
}

impl Serialize for Hash64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Hash64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash64::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

fn node(left: &Hash64, right: &Hash64) -> Hash64 {
    let mut hasher = Sha256::new();
    hasher.update(left.digest());
    hasher.update(right.digest());
    Hash64::from_digest(hasher.finalize().into())
}

/// The fid of a file from its segment hashes, in file order (see the module docs).
pub fn fid_of_segments(segments: &[Hash64]) -> Result<Hash64> {
    if segments.is_empty() {
        return Err(Error::invalid("a file has at least one segment"));
    }
    let mut level: Vec<Hash64> = segments.to_vec();
    loop {
        level = level
            .chunks(2)
            .map(|pair| node(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
        if level.len() == 1 {
            return Ok(level[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn fragment_hash_is_lowercase_hex_ascii_of_sha256() {
        let h = Hash64::of_bytes(b"abc");
        // FIPS 180-2 test vector for "abc".
        assert_eq!(
            h.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(&h.as_ascii()[..4], b"ba78");
        assert_eq!(Hash64::from_hex(&h.as_str().to_uppercase()).unwrap(), h);
        assert!(Hash64::from_hex("abc").is_err());
        assert!(Hash64::from_ascii([b'G'; 64]).is_err());
        assert_eq!(Hash64::from_ascii(*h.as_ascii()).unwrap(), h);
    }

    #[test]
    fn fid_of_one_segment_hashes_the_digest_twice() {
        let a = Hash64::of_bytes(b"segment-0");
        let mut both = a.digest().to_vec();
        both.extend_from_slice(&a.digest());
        assert_eq!(fid_of_segments(&[a]).unwrap().as_str(), sha_hex(&both));
    }

    // Fixed vectors: segments are sha256("abc"), sha256(""), sha256("segment-2"); the expected
    // values were computed independently (Python hashlib over the raw digests).
    #[test]
    fn fid_fixed_vectors() {
        let abc = Hash64::of_bytes(b"abc");
        let empty = Hash64::of_bytes(b"");
        let third = Hash64::of_bytes(b"segment-2");
        assert_eq!(
            empty.as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let one = fid_of_segments(&[abc]).unwrap();
        assert_eq!(
            one.as_str(),
            "3b771ca97e3c17698aff21227fa046b5622a30d8ee5d2de4ee1111a1cdf258ee"
        );
        let two = fid_of_segments(&[abc, empty]).unwrap();
        assert_eq!(
            two.as_str(),
            "6f1290896ee81a0349174d19f4473d267a10289c40480861d5c42affffbd79f9"
        );
        // Three segments: the odd one is paired with itself, then the two parents are paired.
        let left = fid_of_segments(&[abc, empty]).unwrap();
        let right = fid_of_segments(&[third]).unwrap();
        let three = fid_of_segments(&[abc, empty, third]).unwrap();
        assert_eq!(
            three.as_str(),
            "e604a67156bdf3934ff633059d090144d7efa2b175657ed47b163ad52403ccd2"
        );
        assert_eq!(three, fid_of_segments(&[left, right]).unwrap());
        // Order matters.
        assert_ne!(two, fid_of_segments(&[empty, abc]).unwrap());
        assert!(fid_of_segments(&[]).is_err());
    }

    #[test]
    fn fid_of_four_and_five_segments() {
        let s: Vec<Hash64> = (0..5u8).map(|i| Hash64::of_bytes(&[i])).collect();
        let ab = node(&s[0], &s[1]);
        let cd = node(&s[2], &s[3]);
        assert_eq!(fid_of_segments(&s[..4]).unwrap(), node(&ab, &cd));
        let ee = node(&s[4], &s[4]);
        let top = node(&node(&ab, &cd), &node(&ee, &ee));
        assert_eq!(fid_of_segments(&s).unwrap(), top);
    }
}
