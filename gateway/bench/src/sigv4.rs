//! AWS Signature Version 4 for S3 requests, header-based, with `UNSIGNED-PAYLOAD`.
//!
//! Hand-written over `hmac`/`sha2` rather than pulling in the SDK's signer: the bench signs
//! tens of thousands of tiny requests per second, and only needs the plain header form.
//! Bodies are never hashed (the payload hash is `UNSIGNED-PAYLOAD`), so a 1 GiB PUT costs
//! the client nothing but generating the bytes.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// The payload hash that tells the server the body is not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Who signs, and for which region; the service is always `s3`.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl std::fmt::Debug for Credentials {
    // The secret never reaches logs or panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One request to sign. `path` is already percent-encoded exactly as it is sent (see
/// [`encode_path`]); `query` holds raw, unencoded pairs; `headers` must include `host`.
#[derive(Debug)]
pub struct RequestToSign<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    pub headers: &'a [(&'a str, &'a str)],
    pub payload_hash: &'a str,
}

/// The headers a signed request must carry besides the ones it was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub amz_date: String,
    pub authorization: String,
}

/// Signs `request` at `now`. The `x-amz-date` and `x-amz-content-sha256` headers are added
/// to the signed set here; the caller sends them with the values in the returned
/// [`Signature`] and `request.payload_hash`.
pub fn sign(
    credentials: &Credentials,
    request: &RequestToSign<'_>,
    now: OffsetDateTime,
) -> Signature {
    let amz_date = now
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("a UTC timestamp always formats");
    let day = &amz_date[..8];
    let scope = format!("{day}/{}/s3/aws4_request", credentials.region);

    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    headers.push(("x-amz-content-sha256".into(), request.payload_hash.into()));
    headers.push(("x-amz-date".into(), amz_date.clone()));
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();

    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        request.payload_hash
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );

    let key_date = hmac_sha256(format!("AWS4{}", credentials.secret_key).as_bytes(), day);
    let key_region = hmac_sha256(&key_date, &credentials.region);
    let key_service = hmac_sha256(&key_region, "s3");
    let key_signing = hmac_sha256(&key_service, "aws4_request");
    let signature = hex::encode(hmac_sha256(&key_signing, &string_to_sign));

    Signature {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key
        ),
        amz_date,
    }
}

/// The canonical query string: pairs encoded, sorted by name then value, joined by `&`.
/// The client sends this very string, so what is signed is what is sent.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| (encode(name, true), encode(value, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a path (`/bucket/key`) the way S3 expects it: every byte except the
/// unreserved set and `/` (S3 does not double-encode paths, unlike other services).
pub fn encode_path(path: &str) -> String {
    encode(path, false)
}

fn encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (byte == b'/' && !encode_slash) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn hmac_sha256(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn example_credentials() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
        }
    }

    /// The "GET Object" example of the S3 SigV4 header-authentication documentation.
    #[test]
    fn matches_the_aws_get_object_example() {
        let request = RequestToSign {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &[
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("Range", "bytes=0-9"),
            ],
            payload_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        };
        let signature = sign(
            &example_credentials(),
            &request,
            datetime!(2013-05-24 0:00 UTC),
        );
        assert_eq!(signature.amz_date, "20130524T000000Z");
        assert_eq!(
            signature.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn query_is_encoded_and_sorted() {
        assert_eq!(
            canonical_query(&[("uploadId", "a/b+c"), ("partNumber", "2"), ("uploads", "")]),
            "partNumber=2&uploadId=a%2Fb%2Bc&uploads="
        );
        assert_eq!(canonical_query(&[]), "");
    }

    #[test]
    fn path_keeps_slashes_and_encodes_the_rest() {
        assert_eq!(encode_path("/bucket/a b/c~d.e"), "/bucket/a%20b/c~d.e");
        assert_eq!(encode_path("/b/ü"), "/b/%C3%BC");
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", example_credentials());
        assert!(!text.contains("EXAMPLEKEY"), "{text}");
    }
}
