//! Digests of the plaintext: the MD5 behind ETags and Content-MD5, and the `x-amz-checksum-*`
//! family (CRC32, CRC32C, CRC64NVME, SHA1, SHA256).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};

use super::{Error, Result};
use crate::catalogue::Checksum;

mod md5;
pub use self::md5::Md5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "CRC32" => Self::Crc32,
            "CRC32C" => Self::Crc32c,
            "CRC64NVME" => Self::Crc64Nvme,
            "SHA1" => Self::Sha1,
            "SHA256" => Self::Sha256,
            _ => return None,
        })
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Checks that `value` is base64 of a digest of the right length.
    pub fn validate(self, value: &str) -> Result<()> {
        match B64.decode(value) {
            Ok(bytes) if bytes.len() == self.digest_len() => Ok(()),
            _ => Err(Error::InvalidDigest {
                what: self.header_name(),
            }),
        }
    }

    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }
}

/// A checksum the client asked for: its value now (a header), later (an aws-chunked trailer,
/// known only once the body has been read), or not at all (compute and return it).
pub struct ChecksumExpectation {
    pub algorithm: ChecksumAlgorithm,
    pub expected: Option<String>,
    pub from_trailer: Option<Box<dyn FnOnce() -> Option<String> + Send>>,
}

impl std::fmt::Debug for ChecksumExpectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumExpectation")
            .field("algorithm", &self.algorithm)
            .field("expected", &self.expected)
            .field("from_trailer", &self.from_trailer.is_some())
            .finish()
    }
}

enum State {
    Crc(CrcDigest),
    Sha1(ring::digest::Context),
    Sha256(ring::digest::Context),
}

/// Hashes a body as it streams by.
pub struct Hasher {
    md5: Md5,
    checksum: Option<(ChecksumAlgorithm, State)>,
    len: u64,
}

/// What a [`Hasher`] found.
#[derive(Debug, Clone)]
pub struct Digests {
    pub md5: [u8; 16],
    pub checksum: Option<Checksum>,
    pub len: u64,
}

impl Hasher {
    pub fn new(algorithm: Option<ChecksumAlgorithm>) -> Self {
        let checksum = algorithm.map(|a| {
            let state = match a {
                ChecksumAlgorithm::Crc32 => State::Crc(CrcDigest::new(CrcAlgorithm::Crc32IsoHdlc)),
                ChecksumAlgorithm::Crc32c => State::Crc(CrcDigest::new(CrcAlgorithm::Crc32Iscsi)),
                ChecksumAlgorithm::Crc64Nvme => State::Crc(CrcDigest::new(CrcAlgorithm::Crc64Nvme)),
                ChecksumAlgorithm::Sha1 => State::Sha1(ring::digest::Context::new(
                    &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                )),
                ChecksumAlgorithm::Sha256 => {
                    State::Sha256(ring::digest::Context::new(&ring::digest::SHA256))
                }
            };
            (a, state)
        });
        Self {
            md5: Md5::new(),
            checksum,
            len: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.len += data.len() as u64;
        match &mut self.checksum {
            Some((_, State::Crc(d))) => d.update(data),
            Some((_, State::Sha1(c) | State::Sha256(c))) => c.update(data),
            None => {}
        }
    }

    pub fn finish(self) -> Digests {
        let md5 = self.md5.finalize();
        let checksum = self.checksum.map(|(algorithm, state)| {
            let bytes = match state {
                State::Crc(d) => {
                    let v = d.finalize();
                    if algorithm == ChecksumAlgorithm::Crc64Nvme {
                        v.to_be_bytes().to_vec()
                    } else {
                        (v as u32).to_be_bytes().to_vec()
                    }
                }
                State::Sha1(c) | State::Sha256(c) => c.finish().as_ref().to_vec(),
            };
            Checksum {
                algorithm: algorithm.as_str().to_string(),
                value: B64.encode(bytes),
            }
        });
        Digests {
            md5,
            checksum,
            len: self.len,
        }
    }
}

/// The ETag of a multipart object: MD5 of the parts' binary MD5s, then `-N`.
pub fn multipart_etag(part_md5_hex: &[String]) -> String {
    let mut h = Md5::new();
    for p in part_md5_hex {
        h.update(&hex::decode(p).unwrap_or_default());
    }
    let digest = h.finalize();
    format!("{}-{}", hex::encode(digest), part_md5_hex.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(alg: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(Some(alg));
        h.update(&data[..3]);
        h.update(&data[3..]);
        h.finish().checksum.unwrap().value
    }

    #[test]
    fn known_vectors() {
        let data = b"123456789";
        // Check values of the CRC catalogue for "123456789".
        assert_eq!(
            digest(ChecksumAlgorithm::Crc32, data),
            B64.encode(0xCBF4_3926u32.to_be_bytes())
        );
        assert_eq!(
            digest(ChecksumAlgorithm::Crc32c, data),
            B64.encode(0xE306_9283u32.to_be_bytes())
        );
        assert_eq!(
            digest(ChecksumAlgorithm::Crc64Nvme, data),
            B64.encode(0xAE8B_1486_0A79_9888u64.to_be_bytes())
        );
        let h = Hasher::new(None);
        assert_eq!(
            hex::encode(h.finish().md5),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            digest(ChecksumAlgorithm::Sha1, b"abc"),
            "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
        );
    }

    #[test]
    fn validation_and_multipart_etag() {
        assert!(ChecksumAlgorithm::Crc32.validate("yZRlqg==").is_ok());
        assert!(ChecksumAlgorithm::Crc32.validate("not base64!").is_err());
        assert!(ChecksumAlgorithm::Sha256.validate("yZRlqg==").is_err());
        let etag = multipart_etag(&[
            "d41d8cd98f00b204e9800998ecf8427e".into(),
            "d41d8cd98f00b204e9800998ecf8427e".into(),
        ]);
        assert!(etag.ends_with("-2"));
        assert_eq!(etag.len(), 34);
    }
}
