//! Who is calling: access keys from the catalogue (s3s verifies the signatures with them), and the
//! access rule every request passes: signed, or refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Request, S3Result, s3_error};

use crate::catalogue::Catalogue;
use crate::crypto::MasterKey;
use crate::object::Principal;

/// How long a looked-up key is trusted before the catalogue is asked again: a deleted key stops
/// working within this time.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// The secret a key's sealed secret is bound to (AAD), so sealed secrets cannot be swapped.
pub fn secret_context(access_key: &str) -> String {
    format!("deoss/access-key/{access_key}")
}

#[derive(Debug, Clone)]
struct Entry {
    secret: String,
    user_id: String,
    fetched: Instant,
}

/// Access keys, looked up in the catalogue with a short cache.
#[derive(Debug, Clone)]
pub struct KeyDirectory {
    catalogue: Catalogue,
    master: MasterKey,
    cache: Arc<Mutex<HashMap<String, Entry>>>,
}

impl KeyDirectory {
    pub fn new(catalogue: Catalogue, master: MasterKey) -> Self {
        Self {
            catalogue,
            master,
            cache: Arc::default(),
        }
    }

    async fn lookup(&self, access_key: &str) -> S3Result<Option<Entry>> {
        if let Some(e) = self.cache.lock().expect("poisoned").get(access_key)
            && e.fetched.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(e.clone()));
        }
        let record = self.catalogue.access_key(access_key).await.map_err(|e| {
            tracing::error!(error = %e, "access key lookup failed");
            s3_error!(
                ServiceUnavailable,
                "the catalogue is unavailable; try again later"
            )
        })?;
        let Some(record) = record else {
            self.cache.lock().expect("poisoned").remove(access_key);
            return Ok(None);
        };
        let secret = self
            .master
            .open_secret(&secret_context(access_key), &record.secret_sealed)
            .map_err(|e| {
                tracing::error!(error = %e, "access key secret does not open under the master key");
                s3_error!(InternalError)
            })?;
        let entry = Entry {
            secret: String::from_utf8(secret).map_err(|_| s3_error!(InternalError))?,
            user_id: record.user_id,
            fetched: Instant::now(),
        };
        self.cache
            .lock()
            .expect("poisoned")
            .insert(access_key.to_string(), entry.clone());
        Ok(Some(entry))
    }

    /// Who a verified request acts for: the user of its access key, or nobody (the object
    /// service's authorizer decides what an anonymous request may do).
    pub async fn caller<T>(&self, req: &S3Request<T>) -> S3Result<Principal> {
        let Some(creds) = req.credentials.as_ref() else {
            return Ok(Principal::Anonymous);
        };
        let entry = self
            .lookup(&creds.access_key)
            .await?
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
        Ok(Principal::user(entry.user_id))
    }
}

#[async_trait]
impl S3Auth for KeyDirectory {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.lookup(access_key).await? {
            Some(e) => Ok(SecretKey::from(e.secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "the access key id does not exist"
            )),
        }
    }
}

/// Every S3 request must be signed (SigV4, presigned or streaming); anonymous requests are denied.
/// Per-bucket ownership is checked by the object service.
#[derive(Debug, Clone, Copy)]
pub struct SignedOnly;

#[async_trait]
impl S3Access for SignedOnly {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        match cx.credentials() {
            Some(_) => Ok(()),
            // S3's answer to response-* overrides without a signature, whatever the object.
            None if has_response_overrides(cx.uri()) => Err(s3_error!(
                InvalidRequest,
                "Request specific response headers cannot be used for anonymous GET requests."
            )),
            None => Err(s3_error!(
                AccessDenied,
                "anonymous access is not allowed; sign the request with SigV4"
            )),
        }
    }
}

/// The query parameters with which a GET or HEAD overrides response headers.
const RESPONSE_OVERRIDES: [&str; 6] = [
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
];

fn has_response_overrides(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|p| {
            let name = p.split('=').next().unwrap_or_default();
            RESPONSE_OVERRIDES
                .iter()
                .any(|o| name.eq_ignore_ascii_case(o))
        })
    })
}

/// Whether a request is signed with AWS Signature Version 2, which deoss refuses (s3s would
/// accept it): an `Authorization: AWS key:sig` header or a presigned v2 query.
pub fn is_sigv2(headers: &http::HeaderMap, uri: &http::Uri) -> bool {
    let header_v2 = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    let query_v2 = uri.query().is_some_and(|q| {
        q.split('&').any(|p| p.starts_with("AWSAccessKeyId="))
            && !q.split('&').any(|p| p.starts_with("X-Amz-Algorithm="))
    });
    header_v2 || query_v2
}

/// The region of a SigV4 request's credential scope (`Credential=AK/DATE/REGION/s3/aws4_request`
/// in the `Authorization` header, or `X-Amz-Credential` in a presigned query), if it has one.
pub fn signing_region(headers: &http::HeaderMap, uri: &http::Uri) -> Option<String> {
    let scope_region = |credential: &str| credential.split('/').nth(2).map(str::to_string);
    if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("AWS4-HMAC-SHA256"))
    {
        let credential = auth
            .split([' ', ','])
            .find_map(|part| part.trim().strip_prefix("Credential="))?;
        return scope_region(credential);
    }
    let query = uri.query()?;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("X-Amz-Credential=")?;
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()?;
        scope_region(&decoded)
    })
}
