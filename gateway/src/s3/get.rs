//! GetObject and HeadObject: the request's conditions, range or part number and SSE-C key
//! become a [`ReadRequest`]; the service's [`ObjectRead`] becomes the response.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DeossS3;
use super::error::OrS3;
use super::headers::{
    condition_text, customer_key, part_number, set_checksum, set_object_headers, set_sse,
    timestamp_ms,
};
use crate::object::{ByteRange, ByteStream, Conditions, ReadRequest, Selection};

/// The bytes a GET or HEAD asks for: a `Range` header or a `partNumber`, not both.
fn selection(range: Option<&s3s::dto::Range>, part: Option<i32>) -> S3Result<Selection> {
    match (range, part) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "cannot specify both Range and partNumber"
        )),
        (Some(s3s::dto::Range::Int { first, last }), None) => {
            Ok(Selection::Range(ByteRange::From {
                first: *first,
                last: *last,
            }))
        }
        (Some(s3s::dto::Range::Suffix { length }), None) => {
            Ok(Selection::Range(ByteRange::Suffix { length: *length }))
        }
        (None, Some(n)) => Ok(Selection::Part(part_number(n)?)),
        (None, None) => Ok(Selection::Whole),
    }
}

/// The [`ReadRequest`] of a GetObject or HeadObject input, which name their fields alike.
macro_rules! read_request {
    ($i:expr) => {
        ReadRequest {
            bucket: $i.bucket.clone(),
            key: $i.key.clone(),
            selection: selection($i.range.as_ref(), $i.part_number)?,
            conditions: Conditions {
                if_match: $i.if_match.as_ref().map(condition_text),
                if_none_match: $i.if_none_match.as_ref().map(condition_text),
                if_modified_since_ms: $i.if_modified_since.as_ref().map(timestamp_ms),
                if_unmodified_since_ms: $i.if_unmodified_since.as_ref().map(timestamp_ms),
            },
            customer_key: customer_key(
                $i.sse_customer_algorithm.as_deref(),
                $i.sse_customer_key.as_deref(),
                $i.sse_customer_key_md5.as_deref(),
            )?,
        }
    };
}

/// A response body for s3s.
struct Body(ByteStream);

impl futures::Stream for Body {
    type Item = Result<bytes::Bytes, s3s::StdError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl s3s::stream::ByteStream for Body {}

/// Fills the length, range and checksum fields shared by GetObject and HeadObject. A stored
/// checksum covers the whole object, so it is given only for whole-object reads.
macro_rules! set_extent {
    ($out:expr, $read:expr, $checksum_mode:expr) => {{
        let read = $read;
        $out.content_length = Some(read.content_length() as i64);
        $out.content_range = read.content_range();
        if read.range.is_none()
            && $checksum_mode
                .as_ref()
                .is_some_and(|m: &ChecksumMode| m.as_str() == ChecksumMode::ENABLED)
        {
            set_checksum!($out, read.info.checksum.as_ref());
        }
    }};
}

impl DeossS3 {
    pub(super) async fn do_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = &req.input;
        let read = read_request!(i);
        let ck = read.customer_key.clone();
        let read = self.svc.get_object(&caller, read).await.or_s3()?;
        let mut out = GetObjectOutput::default();
        set_object_headers!(out, &read.info);
        set_sse!(out, ck.as_ref());
        set_extent!(out, &read, i.checksum_mode);
        let version_id = read.info.version_id.clone();
        out.body = Some(StreamingBlob::new(Body(read.into_body())));
        let mut resp = S3Response::new(out);
        self.settlement_headers(&version_id, &mut resp.headers)
            .await;
        Ok(resp)
    }

    pub(super) async fn do_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = &req.input;
        let read = read_request!(i);
        let ck = read.customer_key.clone();
        let read = self.svc.head(&caller, read).await.or_s3()?;
        let mut out = HeadObjectOutput::default();
        set_object_headers!(out, &read.info);
        // s3s applies the response-* overrides of GetObject itself, but not those of HeadObject.
        let overrides = [
            (&mut out.content_type, &i.response_content_type),
            (&mut out.content_language, &i.response_content_language),
            (&mut out.cache_control, &i.response_cache_control),
            (
                &mut out.content_disposition,
                &i.response_content_disposition,
            ),
            (&mut out.content_encoding, &i.response_content_encoding),
        ];
        for (field, given) in overrides {
            if given.is_some() {
                field.clone_from(given);
            }
        }
        if i.response_expires.is_some() {
            out.expires.clone_from(&i.response_expires);
        }
        set_sse!(out, ck.as_ref());
        set_extent!(out, &read, i.checksum_mode);
        let mut resp = S3Response::new(out);
        self.settlement_headers(&read.info.version_id, &mut resp.headers)
            .await;
        Ok(resp)
    }

    /// `x-deoss-fid` and `x-deoss-settlement`: the object's storage order and where it stands.
    /// They only inform: if the lookup fails, the object is still served, without them.
    async fn settlement_headers(&self, version_id: &str, headers: &mut http::HeaderMap) {
        let row = match self.svc.object_settlement(version_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(version_id, error = %e, "settlement lookup failed; headers left out");
                return;
            }
        };
        if let Some(fid) = &row.fid
            && let Ok(v) = http::HeaderValue::from_str(fid)
        {
            headers.insert(FID_HEADER, v);
        }
        let text = crate::settlement::header_value(row.state, row.block, row.reason.as_deref());
        let visible: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = http::HeaderValue::from_str(&visible) {
            headers.insert(SETTLEMENT_HEADER, v);
        }
    }
}

/// The object's CESS file id (64 hex), when it has a storage order.
pub const FID_HEADER: &str = "x-deoss-fid";
/// Where the object's storage order stands: `pending`, `declared; block=N`,
/// `failed; reason=...` or `none; reason=...`.
pub const SETTLEMENT_HEADER: &str = "x-deoss-settlement";
