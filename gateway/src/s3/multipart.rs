//! Multipart uploads: create, upload part (and part copy), complete, abort, list.

use percent_encoding::utf8_percent_encode;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DeossS3;
use super::copy_source::copy_source_fields;
use super::error::OrS3;
use super::headers::{
    ChecksumHeaders, MetaHeaders, content_md5, customer_key, etag, part_number, set_checksum,
    set_sse, timestamp,
};
use super::list::KEY_ESCAPE;
use super::put::body_stream;
use crate::object::CompletedPart as DomainPart;

const MAX_PARTS: i32 = 1000;
const MAX_UPLOADS: i32 = 1000;

/// Parses `bytes=first-last` of x-amz-copy-source-range against the source size.
fn copy_range(value: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "the x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let (first, last) = value
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "the copy source range is not satisfiable for an object of {size} bytes"
        ));
    }
    Ok(first..last + 1)
}

/// `scheme://host` of the gateway as the client addressed it (the Host header; `https` when a
/// TLS proxy in front says so with X-Forwarded-Proto), or "" when the request names no host.
fn request_base_url(headers: &http::HeaderMap) -> String {
    let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
    else {
        return String::new();
    };
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

impl DeossS3 {
    pub(super) async fn do_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let ck = customer_key(
            i.sse_customer_algorithm.as_deref(),
            i.sse_customer_key.as_deref(),
            i.sse_customer_key_md5.as_deref(),
        )?;
        let meta = MetaHeaders {
            content_type: i.content_type.as_deref(),
            content_encoding: i.content_encoding.as_deref(),
            content_disposition: i.content_disposition.as_deref(),
            content_language: i.content_language.as_deref(),
            cache_control: i.cache_control.as_deref(),
            expires: i.expires.as_ref(),
            metadata: i.metadata.as_ref(),
        }
        .into_meta()?;
        let class = i.storage_class.as_ref().map(StorageClass::as_str);
        let upload_id = self
            .svc
            .create_multipart_upload(&caller, &i.bucket, &i.key, meta, class, ck.as_ref())
            .await
            .or_s3()?;
        let mut out = CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload_id),
            ..Default::default()
        };
        set_sse!(out, ck.as_ref());
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let caller = self.keys.caller(&req).await?;
        let trailer = req
            .headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let i = req.input;
        let ck = customer_key(
            i.sse_customer_algorithm.as_deref(),
            i.sse_customer_key.as_deref(),
            i.sse_customer_key_md5.as_deref(),
        )?;
        let checksum = ChecksumHeaders {
            algorithm: i.checksum_algorithm.as_ref().map(ChecksumAlgorithm::as_str),
            crc32: i.checksum_crc32.as_deref(),
            crc32c: i.checksum_crc32c.as_deref(),
            crc64nvme: i.checksum_crc64nvme.as_deref(),
            sha1: i.checksum_sha1.as_deref(),
            sha256: i.checksum_sha256.as_deref(),
            trailer: trailer.as_deref(),
            trailing: req.trailing_headers.as_ref(),
        }
        .expectation()?;
        let part = self
            .svc
            .upload_part(
                &caller,
                &i.bucket,
                &i.key,
                &i.upload_id,
                part_number(i.part_number)?,
                ck.as_ref(),
                content_md5(i.content_md5.as_deref())?,
                checksum,
                body_stream(i.body),
                i.content_length.and_then(|n| u64::try_from(n).ok()),
            )
            .await
            .or_s3()?;
        let mut out = UploadPartOutput {
            e_tag: Some(etag(&part.etag)),
            ..Default::default()
        };
        set_checksum!(out, part.checksum.as_ref());
        set_sse!(out, ck.as_ref());
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let source = self
            .open_copy_source(&caller, copy_source_fields!(i))
            .await?
            .object;
        let dst_ck = customer_key(
            i.sse_customer_algorithm.as_deref(),
            i.sse_customer_key.as_deref(),
            i.sse_customer_key_md5.as_deref(),
        )?;
        let number = part_number(i.part_number)?;
        let range = match &i.copy_source_range {
            Some(r) => copy_range(r, source.size())?,
            None => 0..source.size(),
        };
        let part = self
            .svc
            .upload_part(
                &caller,
                &i.bucket,
                &i.key,
                &i.upload_id,
                number,
                dst_ck.as_ref(),
                None,
                None,
                source.read(range.clone()),
                Some(range.end - range.start),
            )
            .await
            .or_s3()?;
        let mut out = UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&part.etag)),
                last_modified: Some(timestamp(part.last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        };
        set_sse!(out, dst_ck.as_ref());
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let caller = self.keys.caller(&req).await?;
        let base = request_base_url(&req.headers);
        let i = req.input;
        let parts = i
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let number = p
                    .part_number
                    .ok_or_else(|| s3_error!(MalformedXML, "every part needs a PartNumber"))?;
                let tag = p
                    .e_tag
                    .ok_or_else(|| s3_error!(MalformedXML, "every part needs an ETag"))?;
                Ok(DomainPart {
                    part_number: part_number(number)?,
                    etag: tag.value().to_string(),
                })
            })
            .collect::<S3Result<Vec<_>>>()?;
        let record = self
            .svc
            .complete_multipart_upload(&caller, &i.bucket, &i.key, &i.upload_id, &parts)
            .await
            .or_s3()?;
        let server_side_encryption = (!record.customer_key)
            .then(|| ServerSideEncryption::from_static(ServerSideEncryption::AES256));
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            e_tag: Some(etag(&record.etag)),
            location: Some(format!(
                "{base}/{}/{}",
                i.bucket,
                utf8_percent_encode(&i.key, KEY_ESCAPE)
            )),
            server_side_encryption,
            ..Default::default()
        }))
    }

    pub(super) async fn do_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = &req.input;
        self.svc
            .abort_multipart_upload(&caller, &i.bucket, &i.key, &i.upload_id)
            .await
            .or_s3()?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn do_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let max = i.max_parts.unwrap_or(MAX_PARTS);
        if max < 0 {
            return Err(s3_error!(
                InvalidArgument,
                "max-parts must be a non-negative integer"
            ));
        }
        let marker = i.part_number_marker.unwrap_or(0).max(0) as u32;
        let (upload, parts, truncated) = self
            .svc
            .list_parts(
                &caller,
                &i.bucket,
                &i.key,
                &i.upload_id,
                marker,
                max.min(MAX_PARTS) as usize,
            )
            .await
            .or_s3()?;
        let owner = Owner {
            id: Some(upload.owner_id.clone()),
            display_name: None,
        };
        let next = parts.last().map(|p| p.part_number as i32);
        let parts = parts
            .into_iter()
            .map(|p| {
                let mut part = Part {
                    part_number: Some(p.part_number as i32),
                    e_tag: Some(etag(&p.etag)),
                    size: Some(p.size as i64),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    ..Default::default()
                };
                set_checksum!(part, p.checksum.as_ref());
                part
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            max_parts: Some(max),
            is_truncated: Some(truncated),
            parts: Some(parts),
            storage_class: Some(StorageClass::from(upload.storage_class)),
            initiator: Some(Initiator {
                id: owner.id.clone(),
                display_name: None,
            }),
            owner: Some(owner),
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let max = i.max_uploads.unwrap_or(MAX_UPLOADS);
        if max < 0 {
            return Err(s3_error!(
                InvalidArgument,
                "max-uploads must be a non-negative integer"
            ));
        }
        if i.delimiter.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(s3_error!(
                NotImplemented,
                "a delimiter on ListMultipartUploads is not supported"
            ));
        }
        let prefix = i.prefix.clone().unwrap_or_default();
        let key_marker = i.key_marker.clone().unwrap_or_default();
        let id_marker = i.upload_id_marker.clone().unwrap_or_default();
        let (uploads, truncated) = self
            .svc
            .list_multipart_uploads(
                &caller,
                &i.bucket,
                &prefix,
                &key_marker,
                &id_marker,
                max.min(MAX_UPLOADS) as usize,
            )
            .await
            .or_s3()?;
        let next = uploads.last().map(|u| (u.key.clone(), u.upload_id.clone()));
        let uploads = uploads
            .into_iter()
            .map(|u| {
                let owner = Owner {
                    id: Some(u.owner_id.clone()),
                    display_name: None,
                };
                MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.upload_id),
                    initiated: Some(timestamp(u.initiated_ms)),
                    storage_class: Some(StorageClass::from(u.storage_class)),
                    initiator: Some(Initiator {
                        id: owner.id.clone(),
                        display_name: None,
                    }),
                    owner: Some(owner),
                    ..Default::default()
                }
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: Some(prefix),
            key_marker: Some(key_marker),
            upload_id_marker: Some(id_marker),
            max_uploads: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: if truncated {
                next.as_ref().map(|n| n.0.clone())
            } else {
                None
            },
            next_upload_id_marker: if truncated { next.map(|n| n.1) } else { None },
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
