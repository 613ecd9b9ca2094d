//! PutObject, CopyObject, DeleteObject, DeleteObjects.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DeossS3;
use super::copy_source::copy_source_fields;
use super::error::{OrS3, to_s3};
use super::headers::{
    ChecksumHeaders, MetaHeaders, content_md5, customer_key, etag, set_checksum, set_sse, timestamp,
};
use crate::object::{ByteStream, PutObject};

/// Most keys one DeleteObjects request may name.
const MAX_DELETE_KEYS: usize = 1000;

pub(super) fn body_stream(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(b) => Box::pin(b),
        None => Box::pin(futures::stream::empty()),
    }
}

impl DeossS3 {
    pub(super) async fn do_put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let caller = self.keys.caller(&req).await?;
        let trailer = req
            .headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let i = req.input;
        if i.if_match.is_some() || i.if_none_match.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "conditional writes (If-Match / If-None-Match on PUT) are not supported"
            ));
        }
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
        let put = PutObject {
            size_hint: i.content_length.and_then(|n| u64::try_from(n).ok()),
            bucket: i.bucket,
            key: i.key,
            meta,
            storage_class: i.storage_class.map(|c| c.as_str().to_string()),
            customer_key: ck.clone(),
            content_md5: content_md5(i.content_md5.as_deref())?,
            checksum,
            body: body_stream(i.body),
        };
        let outcome = self.svc.put_object(&caller, put).await.or_s3()?;
        let mut out = PutObjectOutput {
            e_tag: Some(etag(&outcome.etag)),
            size: Some(outcome.size as i64),
            ..Default::default()
        };
        set_checksum!(out, outcome.checksum.as_ref());
        set_sse!(out, ck.as_ref());
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        let src = self
            .open_copy_source(&caller, copy_source_fields!(i))
            .await?;
        let dst_ck = customer_key(
            i.sse_customer_algorithm.as_deref(),
            i.sse_customer_key.as_deref(),
            i.sse_customer_key_md5.as_deref(),
        )?;
        let source = src.object;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let storage_class = i.storage_class.as_ref().map(|c| c.as_str().to_string());
        let same_object = src.bucket == i.bucket && src.key == i.key;
        if same_object
            && !replace
            && storage_class.is_none()
            && src.customer_key.is_none()
            && dst_ck.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the \
                 object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let meta = if replace {
            MetaHeaders {
                content_type: i.content_type.as_deref(),
                content_encoding: i.content_encoding.as_deref(),
                content_disposition: i.content_disposition.as_deref(),
                content_language: i.content_language.as_deref(),
                cache_control: i.cache_control.as_deref(),
                expires: i.expires.as_ref(),
                metadata: i.metadata.as_ref(),
            }
            .into_meta()?
        } else {
            source.info().meta
        };
        let dest = PutObject {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            meta,
            storage_class,
            customer_key: dst_ck.clone(),
            content_md5: None,
            checksum: None,
            body: Box::pin(futures::stream::empty()),
            size_hint: None,
        };
        let outcome = self
            .svc
            .copy_object(&caller, &source, None, dest)
            .await
            .or_s3()?;
        let mut out = CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&outcome.etag)),
                last_modified: Some(timestamp(outcome.last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        };
        set_sse!(out, dst_ck.as_ref());
        Ok(S3Response::new(out))
    }

    pub(super) async fn do_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = &req.input;
        if i.version_id.as_deref().is_some_and(|v| v != "null") {
            return Err(s3_error!(
                NoSuchVersion,
                "this bucket is not versioned; only version \"null\" exists"
            ));
        }
        self.svc
            .delete_object(&caller, &i.bucket, &i.key)
            .await
            .or_s3()?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    pub(super) async fn do_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let caller = self.keys.caller(&req).await?;
        let i = req.input;
        if i.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "a DeleteObjects request may name at most {MAX_DELETE_KEYS} keys"
            ));
        }
        self.svc.head_bucket(&caller, &i.bucket).await.or_s3()?;
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in i.delete.objects {
            let result = if obj.version_id.as_deref().is_some_and(|v| v != "null") {
                Err(s3_error!(NoSuchVersion, "this bucket is not versioned"))
            } else {
                self.svc
                    .delete_object(&caller, &i.bucket, &obj.key)
                    .await
                    .map_err(to_s3)
            };
            match result {
                Ok(()) if !quiet => deleted.push(DeletedObject {
                    key: Some(obj.key),
                    version_id: obj.version_id,
                    ..Default::default()
                }),
                Ok(()) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(obj.key),
                    message: e.message().map(str::to_string),
                    version_id: obj.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }
}
