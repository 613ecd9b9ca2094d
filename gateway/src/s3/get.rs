//! GetObject and HeadObject: conditions, ranges, part numbers, SSE-C.

use std::ops::Range;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DeossS3;
use super::error::OrS3;
use super::headers::{Conditions, customer_key, set_checksum, set_object_headers, set_sse};
use crate::catalogue::ObjectRecord;
use crate::object::{ByteStream, OpenedObject};

/// The byte range a GET or HEAD asks for: a `Range` header or a `partNumber`. The range of a
/// part may be empty (a last part of 0 bytes, an empty object), which no `Content-Range` can
/// describe: see [`content_range`].
fn requested_range(
    record: &ObjectRecord,
    opened: Option<&OpenedObject>,
    range: Option<&s3s::dto::Range>,
    part_number: Option<i32>,
) -> S3Result<Option<Range<u64>>> {
    if let Some(r) = range {
        if part_number.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "cannot specify both Range and partNumber"
            ));
        }
        let r = r.check(record.size).map_err(|_| {
            s3_error!(
                InvalidRange,
                "the requested range is not satisfiable for an object of {} bytes",
                record.size
            )
        })?;
        return Ok(Some(r));
    }
    let Some(n) = part_number else {
        return Ok(None);
    };
    let n = super::headers::part_number(n)?;
    // S3 serves part 1 of an object uploaded in one piece as a range over all of it.
    if record.parts_count == 0 {
        return if n == 1 {
            Ok(Some(0..record.size))
        } else {
            Err(invalid_part_number(1))
        };
    }
    let ranges = opened.map(OpenedObject::part_ranges).unwrap_or_default();
    ranges
        .into_iter()
        .nth((n - 1) as usize)
        .map(Some)
        .ok_or_else(|| invalid_part_number(record.parts_count))
}

/// S3's 416 for a part number past the last part (s3s has no code constant for it).
fn invalid_part_number(parts: u32) -> s3s::S3Error {
    let mut e = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
        format!("the requested part number is not satisfiable: the object has {parts} part(s)"),
    );
    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
    e
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

/// `Content-Range` of a non-empty range. An empty part is answered as S3 answers an empty
/// object: 200 with no `Content-Range` and a `Content-Length` of 0.
fn content_range(r: &Range<u64>, size: u64) -> Option<String> {
    let last = r.end.checked_sub(1).filter(|&last| last >= r.start)?;
    Some(format!("bytes {}-{last}/{size}", r.start))
}

impl DeossS3 {
    pub(super) async fn do_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = &req.input;
        let ck = customer_key(
            i.sse_customer_algorithm.as_deref(),
            i.sse_customer_key.as_deref(),
            i.sse_customer_key_md5.as_deref(),
        )?;
        let opened = self
            .svc
            .open_object(&caller, &i.bucket, &i.key, ck.as_ref())
            .await
            .or_s3()?;
        let record = &opened.record;
        Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        }
        .check(record)?;
        let range = requested_range(record, Some(&opened), i.range.as_ref(), i.part_number)?;
        let mut out = GetObjectOutput::default();
        set_object_headers!(out, record);
        set_sse!(out, ck.as_ref());
        match &range {
            Some(r) => {
                out.content_length = Some((r.end - r.start) as i64);
                out.content_range = content_range(r, record.size);
            }
            None => {
                out.content_length = Some(record.size as i64);
                if i.checksum_mode
                    .as_ref()
                    .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
                {
                    set_checksum!(out, record.checksum.as_ref());
                }
            }
        }
        let body = opened.read(range.unwrap_or(0..record.size));
        out.body = Some(StreamingBlob::new(Body(body)));
        let mut resp = S3Response::new(out);
        self.settlement_headers(&record.version_id, &mut resp.headers)
            .await;
        Ok(resp)
    }

    pub(super) async fn do_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = &req.input;
        let ck = customer_key(
            i.sse_customer_algorithm.as_deref(),
            i.sse_customer_key.as_deref(),
            i.sse_customer_key_md5.as_deref(),
        )?;
        // A part number needs the layout; a plain HEAD only the record.
        let (record, opened) = if i.part_number.is_some() {
            let o = self
                .svc
                .open_object(&caller, &i.bucket, &i.key, ck.as_ref())
                .await
                .or_s3()?;
            (o.record.clone(), Some(o))
        } else {
            (
                self.svc
                    .head_object(&caller, &i.bucket, &i.key, ck.as_ref())
                    .await
                    .or_s3()?,
                None,
            )
        };
        Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        }
        .check(&record)?;
        let range = requested_range(&record, opened.as_ref(), i.range.as_ref(), i.part_number)?;
        let mut out = HeadObjectOutput::default();
        set_object_headers!(out, &record);
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
        match &range {
            Some(r) => {
                out.content_length = Some((r.end - r.start) as i64);
                out.content_range = content_range(r, record.size);
            }
            None => {
                out.content_length = Some(record.size as i64);
                if i.checksum_mode
                    .as_ref()
                    .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
                {
                    set_checksum!(out, record.checksum.as_ref());
                }
            }
        }
        let mut resp = S3Response::new(out);
        self.settlement_headers(&record.version_id, &mut resp.headers)
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
