//! Multipart uploads. Each part is its own extent (separately sealed, under the upload's data
//! key and a binding that names the part), so parts can arrive in any order and be replaced; the
//! completion only picks which extents form the object.

use super::digest::{ChecksumExpectation, multipart_etag};
use super::keyring::Keyring;
use super::objects::new_version_id;
use super::write::{self, ExtentWrite, WriteGuard};
use super::{
    Action, ByteStream, CustomerKey, Error, ObjectInfo, ObjectService, Principal, Result,
    visible_etag,
};
use crate::catalogue::multipart::{ChosenPart, Completed, SettlementPlanner};
use crate::catalogue::{
    Bucket, Checksum, ExtentRecord, ObjectMeta, ObjectRecord, UploadRecord, now_ms,
};
use crate::crypto::{Binding, ChunkCipher, DataKey};
use crate::erasure::Profile;
use crate::settlement::Settlement;

/// Smallest part allowed, except for the last one.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part allowed.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Highest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    pub storage_class: String,
    pub owner_id: String,
}

#[derive(Debug, Clone)]
pub struct PartInfo {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: i64,
    pub checksum: Option<Checksum>,
}

#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// Upload ids sort by creation time (a millisecond timestamp, then randomness), so listing
/// uploads in id order lists them in initiation order, as S3 does.
fn new_upload_id() -> String {
    format!(
        "{:012x}{}",
        now_ms(),
        &uuid::Uuid::new_v4().simple().to_string()[..20]
    )
}

fn upload_info(u: &UploadRecord) -> UploadInfo {
    UploadInfo {
        upload_id: u.upload_id.clone(),
        key: u.key.clone(),
        initiated_ms: u.initiated_ms,
        storage_class: u.storage_class.clone(),
        owner_id: u.owner_id.clone(),
    }
}

impl ObjectService {
    pub async fn create_multipart_upload(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        storage_class: Option<&str>,
        ck: Option<&CustomerKey>,
    ) -> Result<String> {
        let b = self.authorize(caller, Action::WriteObject, bucket).await?;
        let (class, profile) = self.profile_for(&b.profile, storage_class)?;
        self.admit(&b, 0).await?;
        let version_id = new_version_id();
        let dk = DataKey::generate();
        let binding = Binding {
            bucket,
            key,
            version_id: &version_id,
            part: 0,
        };
        let wraps = self.inner.keyring.wrap_new(&dk, &binding, ck);
        let upload = UploadRecord {
            upload_id: new_upload_id(),
            bucket: bucket.to_string(),
            bucket_id: b.id.clone(),
            key: key.to_string(),
            version_id,
            owner_id: caller.require_user()?.to_string(),
            initiated_ms: now_ms(),
            meta,
            storage_class: class,
            profile: profile.name,
            wraps,
        };
        self.inner.catalogue.create_upload(&upload).await?;
        Ok(upload.upload_id)
    }

    /// The ETag a client is given for a part of `upload` (opaque for SSE-C uploads).
    fn part_etag(&self, upload: &UploadRecord, part: u32, md5_hex: &str) -> String {
        let sse_c = Keyring::needs_customer_key(&upload.wraps);
        visible_etag(&self.inner, sse_c, &upload.version_id, part, md5_hex)
    }

    /// The upload, if it exists for this bucket and key and the caller owns the bucket.
    async fn live_upload(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(Bucket, UploadRecord)> {
        let b = self.authorize(caller, Action::WriteObject, bucket).await?;
        match self.inner.catalogue.upload(upload_id).await? {
            Some(u) if u.bucket == bucket && u.key == key => Ok((b, u)),
            _ => Err(Error::NoSuchUpload {
                upload_id: upload_id.to_string(),
            }),
        }
    }

    #[allow(clippy::too_many_arguments)] // one per S3 request field; a struct would only rename them
    pub async fn upload_part(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        ck: Option<&CustomerKey>,
        content_md5: Option<[u8; 16]>,
        checksum: Option<ChecksumExpectation>,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<PartInfo> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(Error::InvalidArgument(format!(
                "part number must be an integer between 1 and {MAX_PART_NUMBER}"
            )));
        }
        let (b, upload) = self.live_upload(caller, bucket, key, upload_id).await?;
        self.inner.keyring.check(&upload.wraps, ck)?;
        // The part's space stays reserved in the territory while it is written.
        let _space = self.admit(&b, size_hint.unwrap_or(0)).await?;
        let binding = Binding {
            bucket,
            key,
            version_id: &upload.version_id,
            part: 0,
        };
        let dk = self.inner.keyring.unwrap(&upload.wraps, &binding, ck)?;
        let profile =
            Profile::parse(&upload.profile).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let nonce_prefix = write::new_nonce_prefix();
        let part_binding = Binding {
            part: part_number,
            ..binding
        };
        let guard = WriteGuard::new(self.inner.clone());
        let extent = write::write_extent(
            &self.inner,
            ExtentWrite {
                part: part_number,
                profile,
                cipher: ChunkCipher::new(&dk.content_key(), nonce_prefix, part_binding),
                nonce_prefix,
                placement_seed: format!(
                    "{}/{part_number}/{}",
                    upload.version_id,
                    uuid::Uuid::new_v4().simple()
                ),
                content_md5,
                checksum,
                max_len: MAX_PART_SIZE,
            },
            body,
            &guard,
        )
        .await?;
        // On failure (the upload completed or aborted meanwhile) the guard collects the part.
        self.inner.catalogue.put_part(&upload, &extent).await?;
        guard.commit();
        self.gc_notify();
        Ok(PartInfo {
            part_number,
            etag: self.part_etag(&upload, part_number, &extent.md5),
            size: extent.size,
            last_modified_ms: extent.created_ms,
            checksum: extent.checksum,
        })
    }

    /// Completes an upload; returns the new object's record.
    pub async fn complete_multipart_upload(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectInfo> {
        let (b, upload) = self.live_upload(caller, bucket, key, upload_id).await?;
        if parts.is_empty() {
            return Err(Error::InvalidRequest(
                "you must specify at least one part".into(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(Error::InvalidPartOrder);
        }
        let stored = self.inner.catalogue.extents(&upload.version_id).await?;
        let mut md5s = Vec::with_capacity(parts.len());
        // The stored extents as this request saw them: the completion commits only if each is
        // still the one stored.
        let mut chosen = Vec::with_capacity(parts.len());
        let mut size = 0u64;
        // Segments the storage order will declare: each part's own, so many small parts take
        // more chain space than their total size alone would suggest.
        let mut segments = 0u64;
        for (i, p) in parts.iter().enumerate() {
            let given = p.etag.trim_matches('"');
            let found = stored
                .iter()
                .find(|e| {
                    e.part == p.part_number && self.part_etag(&upload, e.part, &e.md5) == given
                })
                .ok_or(Error::InvalidPart {
                    part: p.part_number,
                })?;
            if i + 1 < parts.len() && found.size < MIN_PART_SIZE {
                return Err(Error::EntityTooSmall {
                    part: p.part_number,
                });
            }
            md5s.push(self.part_etag(&upload, found.part, &found.md5));
            chosen.push(ChosenPart {
                part: found.part,
                md5: found.md5.clone(),
            });
            size += found.size;
            segments += found.segment_hashes.as_ref().map_or(0, |h| h.len() as u64);
        }
        let record = ObjectRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: upload.version_id.clone(),
            size,
            etag: multipart_etag(&md5s),
            last_modified_ms: now_ms(),
            meta: upload.meta.clone(),
            storage_class: upload.storage_class.clone(),
            wraps: upload.wraps.clone(),
            checksum: None,
            parts_count: parts.len() as u32,
        };
        let payer = match self.settlement() {
            Some(s) => {
                // Each part was only checked for room for itself: the whole object must fit.
                let declared = segments * deoss_chain_client::SEGMENT_SIZE;
                self.admit(&b, declared).await?.map(|p| (s.clone(), p))
            }
            None => None,
        };
        // The fid of the order to declare, for which the space stays reserved.
        let pending_fid = std::sync::Mutex::new(None);
        let plan = payer.as_ref().map(|(s, p)| {
            let (bucket, key, size) = (record.bucket.clone(), record.key.clone(), record.size);
            let pending_fid = &pending_fid;
            move |extents: &[ExtentRecord]| {
                let row = s.plan(p, &bucket, &key, size, extents);
                *pending_fid.lock().expect("poisoned") = Settlement::pending_fid(&row);
                row
            }
        });
        let settle = plan.as_ref().map(|f| f as &SettlementPlanner<'_>);
        match self
            .inner
            .catalogue
            .complete_upload_settled(&upload, &record, &chosen, settle)
            .await?
        {
            Completed::Done => {}
            Completed::UploadGone => {
                return Err(Error::NoSuchUpload {
                    upload_id: upload_id.to_string(),
                });
            }
            // The part was uploaded again while this request was checking it: its ETag or
            // size may differ from what the request computed, so the client must choose again.
            Completed::PartChanged(part) => return Err(Error::InvalidPart { part }),
        }
        if let Some((s, p)) = &payer {
            s.hold_until_declared(p, pending_fid.lock().expect("poisoned").take());
        }
        self.gc_notify();
        self.settlement_notify();
        Ok(ObjectInfo::from(&record))
    }

    pub async fn abort_multipart_upload(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        self.live_upload(caller, bucket, key, upload_id).await?;
        if !self.inner.catalogue.abort_upload(upload_id).await? {
            return Err(Error::NoSuchUpload {
                upload_id: upload_id.to_string(),
            });
        }
        self.gc_notify();
        Ok(())
    }

    /// Parts after `marker`, at most `max`; and whether more follow.
    pub async fn list_parts(
        &self,
        caller: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max: usize,
    ) -> Result<(UploadInfo, Vec<PartInfo>, bool)> {
        let (_, upload) = self.live_upload(caller, bucket, key, upload_id).await?;
        let mut parts: Vec<PartInfo> = self
            .inner
            .catalogue
            .extents(&upload.version_id)
            .await?
            .into_iter()
            .filter(|e| e.part > marker)
            .map(|e| PartInfo {
                part_number: e.part,
                etag: self.part_etag(&upload, e.part, &e.md5),
                size: e.size,
                last_modified_ms: e.created_ms,
                checksum: e.checksum,
            })
            .collect();
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((upload_info(&upload), parts, truncated))
    }

    /// Uploads in progress, in (key, initiation) order after the markers; and whether more follow.
    pub async fn list_multipart_uploads(
        &self,
        caller: &Principal,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max: usize,
    ) -> Result<(Vec<UploadInfo>, bool)> {
        self.authorize(caller, Action::ListBucket, bucket).await?;
        // Without an upload id marker, S3 starts after every upload of the marker key.
        let id_marker = if upload_id_marker.is_empty() && !key_marker.is_empty() {
            "\u{10FFFF}"
        } else {
            upload_id_marker
        };
        let rows = self
            .inner
            .catalogue
            .list_uploads(bucket, prefix, key_marker, id_marker, max + 1)
            .await?;
        let truncated = rows.len() > max;
        Ok((rows.iter().take(max).map(upload_info).collect(), truncated))
    }
}
