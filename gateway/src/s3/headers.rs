//! Translating S3 request fields into domain values and back: SSE-C keys, metadata, digests,
//! checksums, conditions, timestamps.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use s3s::dto::{ETag, ETagCondition, Metadata, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders, s3_error};

use crate::object::ObjectMeta;
use crate::object::digest::Md5;
use crate::object::{ChecksumAlgorithm, ChecksumExpectation, CustomerKey};

/// The SSE-C triple, validated: algorithm AES256, a 256-bit key, and its MD5.
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    let (algorithm, key, key_md5) = match (algorithm, key, key_md5) {
        (None, None, None) => return Ok(None),
        (Some(a), Some(k), Some(m)) => (a, k, m),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "SSE-C requests need all of x-amz-server-side-encryption-customer-algorithm, -key and -key-MD5"
            ));
        }
    };
    if algorithm != "AES256" {
        return Err(s3_error!(
            InvalidArgument,
            "the SSE-C algorithm must be AES256"
        ));
    }
    let bytes = B64
        .decode(key)
        .map_err(|_| s3_error!(InvalidArgument, "the SSE-C key is not valid base64"))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| s3_error!(InvalidArgument, "the SSE-C key must be 256 bits"))?;
    let digest = Md5::digest(&key);
    if B64.encode(digest) != key_md5 {
        return Err(s3_error!(
            InvalidArgument,
            "the SSE-C key MD5 does not match the key"
        ));
    }
    Ok(Some(CustomerKey {
        key,
        key_md5: key_md5.to_string(),
    }))
}

pub fn content_md5(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = value else { return Ok(None) };
    let bytes = B64
        .decode(v)
        .map_err(|_| s3_error!(InvalidDigest, "the Content-MD5 you specified is not valid"))?;
    let md5 = bytes
        .try_into()
        .map_err(|_| s3_error!(InvalidDigest, "the Content-MD5 you specified is not valid"))?;
    Ok(Some(md5))
}

/// The headers an object keeps.
pub struct MetaHeaders<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_language: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a Timestamp>,
    pub metadata: Option<&'a Metadata>,
}

/// Most bytes of user metadata an object may carry, as S3 counts them: the UTF-8 bytes of every
/// name (without `x-amz-meta-`) and value.
pub const MAX_USER_METADATA: usize = 2048;

impl MetaHeaders<'_> {
    pub fn into_meta(self) -> S3Result<ObjectMeta> {
        let own = |v: Option<&str>| v.map(str::to_string);
        let user_size: usize = self
            .metadata
            .map(|m| m.iter().map(|(k, v)| k.len() + v.len()).sum())
            .unwrap_or(0);
        if user_size > MAX_USER_METADATA {
            return Err(s3_error!(
                MetadataTooLarge,
                "Your metadata headers exceed the maximum allowed metadata size: \
                 {user_size} bytes of x-amz-meta-* names and values, at most {MAX_USER_METADATA}"
            ));
        }
        Ok(ObjectMeta {
            content_type: own(self.content_type),
            content_encoding: own(self.content_encoding),
            content_disposition: own(self.content_disposition),
            content_language: own(self.content_language),
            cache_control: own(self.cache_control),
            expires: self.expires.map(http_date).transpose()?,
            user: self
                .metadata
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

pub(super) fn http_date(t: &Timestamp) -> S3Result<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf)
        .map_err(|_| s3_error!(InvalidArgument, "invalid date"))?;
    String::from_utf8(buf).map_err(|_| s3_error!(InvalidArgument, "invalid date"))
}

pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

pub fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub fn timestamp_ms(t: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = t.clone().into();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

/// The checksum a request names: one `x-amz-checksum-*` header, a trailer announced by
/// `x-amz-trailer`, or just an algorithm to compute (`x-amz-sdk-checksum-algorithm`).
pub struct ChecksumHeaders<'a> {
    pub algorithm: Option<&'a str>,
    pub crc32: Option<&'a str>,
    pub crc32c: Option<&'a str>,
    pub crc64nvme: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub trailer: Option<&'a str>,
    pub trailing: Option<&'a TrailingHeaders>,
}

impl ChecksumHeaders<'_> {
    pub fn expectation(self) -> S3Result<Option<ChecksumExpectation>> {
        let given: Vec<(ChecksumAlgorithm, &str)> = [
            (ChecksumAlgorithm::Crc32, self.crc32),
            (ChecksumAlgorithm::Crc32c, self.crc32c),
            (ChecksumAlgorithm::Crc64Nvme, self.crc64nvme),
            (ChecksumAlgorithm::Sha1, self.sha1),
            (ChecksumAlgorithm::Sha256, self.sha256),
        ]
        .into_iter()
        .filter_map(|(a, v)| v.map(|v| (a, v)))
        .collect();
        if given.len() > 1 {
            return Err(s3_error!(
                InvalidRequest,
                "expecting a single x-amz-checksum- header"
            ));
        }
        if let Some((algorithm, value)) = given.first() {
            algorithm.validate(value).map_err(|_| {
                S3Error::with_message(
                    S3ErrorCode::InvalidDigest,
                    format!("value for {} is invalid", algorithm.header_name()),
                )
            })?;
            return Ok(Some(ChecksumExpectation {
                algorithm: *algorithm,
                expected: Some((*value).to_string()),
                from_trailer: None,
            }));
        }
        if let Some(name) = self.trailer.map(|t| t.trim().to_ascii_lowercase()) {
            let algorithm = name
                .strip_prefix("x-amz-checksum-")
                .and_then(ChecksumAlgorithm::parse)
                .ok_or_else(|| s3_error!(InvalidRequest, "unsupported x-amz-trailer {name:?}"))?;
            let trailing = self.trailing.cloned();
            let read = move || {
                trailing
                    .and_then(|t| {
                        t.read(|h| {
                            h.get(name.as_str())
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        })
                    })
                    .flatten()
            };
            return Ok(Some(ChecksumExpectation {
                algorithm,
                expected: None,
                from_trailer: Some(Box::new(read)),
            }));
        }
        match self.algorithm {
            None => Ok(None),
            Some(a) => {
                let algorithm = ChecksumAlgorithm::parse(a).ok_or_else(|| {
                    s3_error!(InvalidRequest, "unsupported checksum algorithm {a:?}")
                })?;
                Ok(Some(ChecksumExpectation {
                    algorithm,
                    expected: None,
                    from_trailer: None,
                }))
            }
        }
    }
}

/// Fills the `checksum_*` fields of an output struct from a stored checksum.
macro_rules! set_checksum {
    ($out:expr, $checksum:expr) => {
        if let Some(c) = $checksum {
            let v = Some(c.value.clone());
            match c.algorithm.as_str() {
                "CRC32" => $out.checksum_crc32 = v,
                "CRC32C" => $out.checksum_crc32c = v,
                "CRC64NVME" => $out.checksum_crc64nvme = v,
                "SHA1" => $out.checksum_sha1 = v,
                "SHA256" => $out.checksum_sha256 = v,
                _ => {}
            }
        }
    };
}
pub(crate) use set_checksum;

/// An ETag condition as text for the service's conditions ("*" or the bare ETag).
pub fn condition_text(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_string(),
        ETagCondition::ETag(e) => e.value().to_string(),
    }
}

/// Applies the stored object headers to an output struct (GetObject / HeadObject).
macro_rules! set_object_headers {
    ($out:expr, $record:expr) => {{
        let r = $record;
        $out.content_type = r.meta.content_type.clone();
        $out.content_encoding = r.meta.content_encoding.clone();
        $out.content_disposition = r.meta.content_disposition.clone();
        $out.content_language = r.meta.content_language.clone();
        $out.cache_control = r.meta.cache_control.clone();
        $out.expires = r
            .meta
            .expires
            .as_deref()
            .and_then($crate::s3::headers::parse_http_date);
        $out.e_tag = Some($crate::s3::headers::etag(&r.etag));
        $out.last_modified = Some($crate::s3::headers::timestamp(r.last_modified_ms));
        $out.accept_ranges = Some("bytes".to_string());
        if !r.meta.user.is_empty() {
            $out.metadata = Some(r.meta.user.clone().into_iter().collect());
        }
        if r.storage_class != "STANDARD" {
            $out.storage_class = Some(s3s::dto::StorageClass::from(r.storage_class.clone()));
        }
        if r.parts_count > 0 {
            $out.parts_count = Some(r.parts_count as i32);
        }
    }};
}
pub(crate) use set_object_headers;

/// The SSE response headers: customer algorithm and key MD5 for SSE-C, AES256 otherwise.
macro_rules! set_sse {
    ($out:expr, $ck:expr) => {
        match $ck {
            Some(ck) => {
                $out.sse_customer_algorithm = Some("AES256".to_string());
                $out.sse_customer_key_md5 = Some(ck.key_md5.clone());
            }
            None => {
                $out.server_side_encryption =
                    Some(s3s::dto::ServerSideEncryption::from_static("AES256"));
            }
        }
    };
}
pub(crate) use set_sse;

/// A part number from a request: an integer from 1 to 10000.
pub(super) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "part number must be an integer between 1 and 10000"
            )
        })
}
