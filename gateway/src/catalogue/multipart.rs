//! Multipart uploads: the upload row, its parts (extents of the upload's version), completion.

use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::objects::{insert_extent, json, load_extents, meta_json, retire_extents};
use super::{Catalogue, ExtentRecord, NewSettlement, ObjectRecord, Result, UploadRecord};

const UPLOAD_COLUMNS: &str = "upload_id, bucket, key, version_id, owner_id, initiated_ms, meta, storage_class, profile, wrapped_key, sse_c_mac";

fn upload(row: &AnyRow) -> Result<UploadRecord> {
    Ok(UploadRecord {
        upload_id: row.try_get("upload_id")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        version_id: row.try_get("version_id")?,
        owner_id: row.try_get("owner_id")?,
        initiated_ms: row.try_get("initiated_ms")?,
        meta: json(&row.try_get::<String, _>("meta")?)?,
        storage_class: row.try_get("storage_class")?,
        profile: row.try_get("profile")?,
        wrapped_key: row.try_get("wrapped_key")?,
        sse_c_mac: row.try_get("sse_c_mac")?,
    })
}

/// Builds an object's settlement row from its extents (in part order).
pub type SettlementPlanner<'a> = dyn Fn(&[ExtentRecord]) -> NewSettlement + Send + Sync + 'a;

/// Outcome of storing a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartStored {
    Stored,
    /// The upload was completed or aborted meanwhile: the part's fragments must be collected.
    UploadGone,
}

impl Catalogue {
    pub async fn create_upload(&self, u: &UploadRecord) -> Result<()> {
        let mut w = self.write().await?;
        let sql = format!(
            "INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&u.upload_id)
            .bind(&u.bucket)
            .bind(&u.key)
            .bind(&u.version_id)
            .bind(&u.owner_id)
            .bind(u.initiated_ms)
            .bind(meta_json(&u.meta))
            .bind(&u.storage_class)
            .bind(&u.profile)
            .bind(&u.wrapped_key)
            .bind(u.sse_c_mac.clone())
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    pub async fn upload(&self, upload_id: &str) -> Result<Option<UploadRecord>> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE upload_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(upload_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(upload).transpose()
    }

    /// Stores (or replaces) a part of an upload that is still in progress.
    pub async fn put_part(
        &self,
        upload_id: &str,
        version_id: &str,
        part: &ExtentRecord,
    ) -> Result<PartStored> {
        let mut w = self.write().await?;
        let live = sqlx::query("SELECT upload_id FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_optional(&mut *w.tx)
            .await?;
        if live.is_none() {
            return Ok(PartStored::UploadGone);
        }
        retire_extents(&mut w.tx, version_id, Some(part.part)).await?;
        insert_extent(&mut w.tx, version_id, part).await?;
        w.tx.commit().await?;
        Ok(PartStored::Stored)
    }

    /// Uploads of a bucket in (key, upload id) order, after the given markers.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> Result<Vec<UploadRecord>> {
        let upper = format!("{prefix}\u{10FFFF}");
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE bucket = $1 AND key >= $2 AND key < $3 \
             AND (key > $4 OR (key = $5 AND upload_id > $6)) ORDER BY key, upload_id LIMIT $7"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(bucket)
            .bind(prefix)
            .bind(upper)
            .bind(key_marker)
            .bind(key_marker)
            .bind(upload_id_marker)
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(upload).collect()
    }

    /// Completes an upload: keeps the chosen parts (`keep_parts`, in ascending order), collects
    /// the others, and makes the object visible, all in one transaction. Returns false if the
    /// upload no longer exists.
    pub async fn complete_upload(
        &self,
        upload_id: &str,
        record: &ObjectRecord,
        keep_parts: &[u32],
    ) -> Result<bool> {
        self.complete_upload_settled(upload_id, record, keep_parts, None)
            .await
    }

    /// [`Catalogue::complete_upload`], also enqueueing the object's settlement in the same
    /// transaction: `settle` builds it from the parts kept, in part order, as the transaction
    /// sees them.
    pub async fn complete_upload_settled(
        &self,
        upload_id: &str,
        record: &ObjectRecord,
        keep_parts: &[u32],
        settle: Option<&SettlementPlanner<'_>>,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        let live = sqlx::query("SELECT version_id FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_optional(&mut *w.tx)
            .await?;
        if live.is_none() {
            return Ok(false);
        }
        let parts = load_extents(&mut w.tx, &record.version_id).await?;
        for p in parts
            .iter()
            .filter(|p| keep_parts.binary_search(&p.part).is_err())
        {
            retire_extents(&mut w.tx, &record.version_id, Some(p.part)).await?;
        }
        sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *w.tx)
            .await?;
        super::objects::replace_object_row(&mut w.tx, record).await?;
        if let Some(settle) = settle {
            let kept: Vec<ExtentRecord> = parts
                .into_iter()
                .filter(|p| keep_parts.binary_search(&p.part).is_ok())
                .collect();
            let settlement = settle(&kept);
            super::settlement::enqueue_declaration(&mut w.tx, record, &settlement).await?;
        }
        w.tx.commit().await?;
        Ok(true)
    }

    /// Ids of uploads initiated before `before_ms` (abandoned, to be aborted).
    pub async fn uploads_initiated_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT upload_id FROM uploads WHERE initiated_ms < $1 ORDER BY initiated_ms LIMIT $2",
        )
        .bind(before_ms)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("upload_id")?)).collect()
    }

    /// Aborts an upload, collecting its parts. Returns false if there was no such upload.
    pub async fn abort_upload(&self, upload_id: &str) -> Result<bool> {
        let mut w = self.write().await?;
        let row = sqlx::query("SELECT version_id FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_optional(&mut *w.tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let version_id: String = row.try_get("version_id")?;
        retire_extents(&mut w.tx, &version_id, None).await?;
        sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(true)
    }
}
