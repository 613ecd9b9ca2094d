//! ListObjects (v1), ListObjectsV2 and ListObjectVersions (for unversioned buckets, where every
//! object is version "null").

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DeossS3;
use super::error::OrS3;
use super::headers::{etag, timestamp};
use crate::object::{Listing, Principal};

/// Most keys one listing page returns, whatever max-keys asks.
const MAX_KEYS: i32 = 1000;

/// What `encoding-type=url` escapes: everything but unreserved characters and '/'. '+' must be
/// escaped too, since clients decode with form rules (where '+' is a space).
pub(super) const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

struct Encoder(bool);

impl Encoder {
    fn new(encoding: Option<&EncodingType>) -> S3Result<Self> {
        match encoding.map(EncodingType::as_str) {
            None => Ok(Self(false)),
            Some(EncodingType::URL) => Ok(Self(true)),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "invalid encoding type {other:?}: only \"url\" is supported"
            )),
        }
    }

    fn enc(&self, s: &str) -> String {
        if self.0 {
            utf8_percent_encode(s, KEY_ESCAPE).to_string()
        } else {
            s.to_string()
        }
    }

    fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.enc(s))
    }
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        )),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
        None => Ok(MAX_KEYS as usize),
    }
}

fn objects(listing: &Listing, enc: &Encoder, owner: Option<&Owner>) -> Vec<Object> {
    listing
        .objects
        .iter()
        .map(|o| Object {
            key: Some(enc.enc(&o.key)),
            size: Some(o.size as i64),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.last_modified_ms)),
            storage_class: Some(ObjectStorageClass::from(o.storage_class.clone())),
            owner: owner.cloned(),
            ..Default::default()
        })
        .collect()
}

fn prefixes(listing: &Listing, enc: &Encoder) -> Vec<CommonPrefix> {
    listing
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc.enc(p)),
        })
        .collect()
}

fn owner_of(caller: &Principal) -> Owner {
    Owner {
        id: caller.user_id().map(str::to_string),
        display_name: None,
    }
}

impl DeossS3 {
    pub(super) async fn do_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let marker = i.marker.clone().unwrap_or_default();
        let listing = self
            .svc
            .list_objects(
                &caller,
                &i.bucket,
                &prefix,
                i.delimiter.as_deref(),
                &marker,
                max,
            )
            .await
            .or_s3()?;
        let owner = owner_of(&caller);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.enc(&prefix)),
            marker: Some(enc.enc(&marker)),
            max_keys: Some(max as i32),
            is_truncated: Some(listing.truncated),
            contents: Some(objects(&listing, &enc, Some(&owner))),
            common_prefixes: Some(prefixes(&listing, &enc)),
            delimiter: enc.opt(i.delimiter.as_deref()),
            // S3 returns NextMarker only with a delimiter; without one clients use the last key.
            next_marker: if listing.truncated && i.delimiter.is_some() {
                enc.opt(listing.next_after.as_deref())
            } else {
                None
            },
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = match &i.continuation_token {
            Some(token) => TOKEN
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))?,
            None => i.start_after.clone().unwrap_or_default(),
        };
        let listing = self
            .svc
            .list_objects(
                &caller,
                &i.bucket,
                &prefix,
                i.delimiter.as_deref(),
                &after,
                max,
            )
            .await
            .or_s3()?;
        let owner = i.fetch_owner.unwrap_or(false).then(|| owner_of(&caller));
        let contents = objects(&listing, &enc, owner.as_ref());
        let common = prefixes(&listing, &enc);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc.enc(&prefix)),
            max_keys: Some(max as i32),
            key_count: Some((contents.len() + common.len()) as i32),
            continuation_token: i.continuation_token,
            is_truncated: Some(listing.truncated),
            next_continuation_token: if listing.truncated {
                listing.next_after.as_deref().map(|a| TOKEN.encode(a))
            } else {
                None
            },
            contents: Some(contents),
            common_prefixes: Some(common),
            delimiter: enc.opt(i.delimiter.as_deref()),
            encoding_type: i.encoding_type,
            start_after: enc.opt(i.start_after.as_deref()),
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let key_marker = i.key_marker.clone().unwrap_or_default();
        let listing = self
            .svc
            .list_objects(
                &caller,
                &i.bucket,
                &prefix,
                i.delimiter.as_deref(),
                &key_marker,
                max,
            )
            .await
            .or_s3()?;
        let owner = owner_of(&caller);
        let versions = listing
            .objects
            .iter()
            .map(|o| ObjectVersion {
                key: Some(enc.enc(&o.key)),
                version_id: Some("null".to_string()),
                is_latest: Some(true),
                size: Some(o.size as i64),
                e_tag: Some(etag(&o.etag)),
                last_modified: Some(timestamp(o.last_modified_ms)),
                storage_class: Some(ObjectVersionStorageClass::from(o.storage_class.clone())),
                owner: Some(owner.clone()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.enc(&prefix)),
            key_marker: Some(enc.enc(&key_marker)),
            version_id_marker: i.version_id_marker,
            max_keys: Some(max as i32),
            is_truncated: Some(listing.truncated),
            next_key_marker: if listing.truncated {
                enc.opt(listing.next_after.as_deref())
            } else {
                None
            },
            next_version_id_marker: listing.truncated.then(|| "null".to_string()),
            versions: Some(versions),
            common_prefixes: Some(prefixes(&listing, &enc)),
            delimiter: enc.opt(i.delimiter.as_deref()),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }
}
