//! Multipart uploads: the upload row, its parts (extents of the upload's version), completion.

use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::buckets::{hold_bucket, is_postgres};
use super::objects::{
    insert_extent, insert_wraps, json, load_extents, load_wraps, meta_json, retire_extents,
};
use super::{
    Catalogue, CatalogueError, ExtentRecord, NewSettlement, ObjectRecord, Result, UploadRecord,
};

const UPLOAD_COLUMNS: &str = "upload_id, bucket, bucket_id, key, version_id, owner_id, initiated_ms, meta, storage_class, profile";

fn upload(row: &AnyRow) -> Result<UploadRecord> {
    Ok(UploadRecord {
        upload_id: row.try_get("upload_id")?,
        bucket: row.try_get("bucket")?,
        bucket_id: row.try_get("bucket_id")?,
        key: row.try_get("key")?,
        version_id: row.try_get("version_id")?,
        owner_id: row.try_get("owner_id")?,
        initiated_ms: row.try_get("initiated_ms")?,
        meta: json(&row.try_get::<String, _>("meta")?)?,
        storage_class: row.try_get("storage_class")?,
        profile: row.try_get("profile")?,
        wraps: Vec::new(),
    })
}

/// Builds an object's settlement row from its extents (in part order).
pub type SettlementPlanner<'a> = dyn Fn(&[ExtentRecord]) -> NewSettlement + Send + Sync + 'a;

/// A part that CompleteMultipartUpload chose, as the request checked it: the completion
/// commits only if the part stored is still that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenPart {
    pub part: u32,
    /// The stored extent's MD5 (hex) when the request checked it.
    pub md5: String,
}

/// Outcome of completing an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    Done,
    /// The upload was completed or aborted meanwhile.
    UploadGone,
    /// A chosen part was replaced (an UploadPart retry) after the request checked it: nothing
    /// was committed.
    PartChanged(u32),
}

/// Locks an upload row for the rest of the transaction (PostgreSQL: `FOR UPDATE`), so that a
/// part stored, a completion and an abort of one upload run one after the other; returns the
/// upload's version id, or `None` if it is gone.
async fn lock_upload(conn: &mut sqlx::AnyConnection, upload_id: &str) -> Result<Option<String>> {
    let lock = if is_postgres(conn) { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT version_id FROM uploads WHERE upload_id = $1{lock}");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(upload_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.try_get("version_id"))
        .transpose()
        .map_err(Into::into)
}

impl Catalogue {
    pub async fn create_upload(&self, u: &UploadRecord) -> Result<()> {
        let mut w = self.write().await?;
        hold_bucket(&mut w.tx, &u.bucket, &u.bucket_id).await?;
        let sql = format!(
            "INSERT INTO uploads ({UPLOAD_COLUMNS}, wrapped_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&u.upload_id)
            .bind(&u.bucket)
            .bind(&u.bucket_id)
            .bind(&u.key)
            .bind(&u.version_id)
            .bind(&u.owner_id)
            .bind(u.initiated_ms)
            .bind(meta_json(&u.meta))
            .bind(&u.storage_class)
            .bind(&u.profile)
            // The key wraps live in `key_wraps` since migration 5; this column stays empty.
            .bind(Vec::<u8>::new())
            .execute(&mut *w.tx)
            .await?;
        insert_wraps(&mut w.tx, &u.version_id, &u.wraps).await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// An upload in progress, with its key wraps.
    pub async fn upload(&self, upload_id: &str) -> Result<Option<UploadRecord>> {
        let mut conn = self.pool().acquire().await?;
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE upload_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(upload_id)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut u = upload(&row)?;
        u.wraps = load_wraps(&mut conn, &u.version_id).await?;
        Ok(Some(u))
    }

    /// Stores (or replaces) a part of an upload that is still in progress; fails with
    /// [`CatalogueError::NoSuchUpload`] once the upload was completed or aborted (the part's
    /// fragments are then the caller's to collect).
    pub async fn put_part(&self, u: &UploadRecord, part: &ExtentRecord) -> Result<()> {
        let mut w = self.write().await?;
        hold_bucket(&mut w.tx, &u.bucket, &u.bucket_id).await?;
        if lock_upload(&mut w.tx, &u.upload_id).await?.is_none() {
            return Err(CatalogueError::NoSuchUpload(u.upload_id.clone()));
        }
        retire_extents(&mut w.tx, &u.version_id, Some(part.part)).await?;
        insert_extent(&mut w.tx, &u.version_id, part).await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// Uploads of a bucket in (key, upload id) order, after the given markers (listed without
    /// their key wraps: `wraps` is empty).
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

    /// Completes an upload: keeps the chosen parts (in ascending order), collects the others,
    /// and makes the object visible, all in one transaction, which first checks that each
    /// chosen part is still the one the request saw.
    pub async fn complete_upload(
        &self,
        u: &UploadRecord,
        record: &ObjectRecord,
        chosen: &[ChosenPart],
    ) -> Result<Completed> {
        self.complete_upload_settled(u, record, chosen, None).await
    }

    /// [`Catalogue::complete_upload`], also enqueueing the object's settlement in the same
    /// transaction: `settle` builds it from the parts kept, in part order, as the transaction
    /// sees them.
    pub async fn complete_upload_settled(
        &self,
        u: &UploadRecord,
        record: &ObjectRecord,
        chosen: &[ChosenPart],
        settle: Option<&SettlementPlanner<'_>>,
    ) -> Result<Completed> {
        let mut w = self.write().await?;
        // Bucket, then upload, then key: every writer takes them in this order.
        hold_bucket(&mut w.tx, &u.bucket, &u.bucket_id).await?;
        if lock_upload(&mut w.tx, &u.upload_id).await?.is_none() {
            return Ok(Completed::UploadGone);
        }
        let parts = load_extents(&mut w.tx, &record.version_id).await?;
        let is_chosen = |part: u32| chosen.binary_search_by_key(&part, |c| c.part).is_ok();
        for c in chosen {
            if !parts.iter().any(|p| p.part == c.part && p.md5 == c.md5) {
                return Ok(Completed::PartChanged(c.part));
            }
        }
        for p in parts.iter().filter(|p| !is_chosen(p.part)) {
            retire_extents(&mut w.tx, &record.version_id, Some(p.part)).await?;
        }
        sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(&u.upload_id)
            .execute(&mut *w.tx)
            .await?;
        super::objects::replace_object_row(&mut w.tx, record).await?;
        if let Some(settle) = settle {
            let kept: Vec<ExtentRecord> = parts.into_iter().filter(|p| is_chosen(p.part)).collect();
            let settlement = settle(&kept);
            super::settlement::enqueue_declaration(&mut w.tx, record, &settlement).await?;
        }
        w.tx.commit().await?;
        Ok(Completed::Done)
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
        let Some(version_id) = lock_upload(&mut w.tx, upload_id).await? else {
            return Ok(false);
        };
        retire_extents(&mut w.tx, &version_id, None).await?;
        sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(true)
    }
}
