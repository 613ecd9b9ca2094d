//! Buckets.
//!
//! A bucket's name can be deleted and created again, by someone else. Every write that puts
//! something into a bucket therefore names the incarnation (`Bucket::id`) it was admitted to and
//! holds that bucket row in its own transaction ([`hold_bucket`]); deleting a bucket takes the
//! row exclusively first. On PostgreSQL the row locks order the two: either the write commits
//! first and the deletion then sees its object, or the deletion commits first and the write
//! finds no such bucket. SQLite runs one writer at a time, so the check alone is enough there.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::objects::retire_extents;
pub use super::records::Bucket;
use super::{Catalogue, CatalogueError, Result};

const BUCKET_COLUMNS: &str = "name, id, owner_id, profile, created_ms, territory";

fn bucket(row: &AnyRow) -> Result<Bucket> {
    Ok(Bucket {
        name: row.try_get("name")?,
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        profile: row.try_get("profile")?,
        created_ms: row.try_get("created_ms")?,
        territory: row.try_get("territory")?,
    })
}

/// Outcome of creating a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateBucket {
    Created,
    /// The bucket exists; its owner's id.
    Exists {
        owner_id: String,
    },
}

/// Outcome of deleting a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBucket {
    /// Deleted, with this many multipart uploads in progress aborted.
    Deleted {
        aborted_uploads: usize,
    },
    Missing,
    NotEmpty,
}

/// Whether the connection speaks to PostgreSQL (which has row locks to take; SQLite has one
/// writer at a time and no `FOR SHARE` syntax).
pub(super) fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Checks, inside a write transaction, that bucket `name` is still incarnation `id`, and holds
/// it (PostgreSQL: a share lock on its row) until the transaction ends, so that a concurrent
/// DeleteBucket waits for this write and then sees it.
pub(super) async fn hold_bucket(conn: &mut AnyConnection, name: &str, id: &str) -> Result<()> {
    let lock = if is_postgres(conn) { " FOR SHARE" } else { "" };
    let sql = format!("SELECT id FROM buckets WHERE name = $1 AND id = $2{lock}");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(name)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(_) => Ok(()),
        None => Err(CatalogueError::NoSuchBucket(name.to_string())),
    }
}

impl Catalogue {
    pub async fn create_bucket(&self, b: &Bucket) -> Result<CreateBucket> {
        let mut w = self.write().await?;
        // One statement that cannot fail on a concurrent creation of the same name (two
        // gateways on PostgreSQL): the loser inserts nothing and is told who owns the bucket.
        let inserted = sqlx::query(
            "INSERT INTO buckets (name, id, owner_id, profile, created_ms, territory) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&b.name)
        .bind(&b.id)
        .bind(&b.owner_id)
        .bind(&b.profile)
        .bind(b.created_ms)
        .bind(b.territory.clone())
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            w.tx.commit().await?;
            return Ok(CreateBucket::Created);
        }
        let row = sqlx::query("SELECT owner_id FROM buckets WHERE name = $1")
            .bind(&b.name)
            .fetch_one(&mut *w.tx)
            .await?;
        Ok(CreateBucket::Exists {
            owner_id: row.try_get("owner_id")?,
        })
    }

    pub async fn bucket(&self, name: &str) -> Result<Option<Bucket>> {
        let sql = format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(bucket).transpose()
    }

    pub async fn list_buckets(&self, owner_id: &str) -> Result<Vec<Bucket>> {
        let sql = format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE owner_id = $1 ORDER BY name");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(owner_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(bucket).collect()
    }

    /// Deletes incarnation `id` of bucket `name` if it holds no objects. Multipart uploads in
    /// progress do not keep a bucket alive, as in S3: they are aborted in the same transaction
    /// and their parts queued for collection.
    pub async fn delete_bucket(&self, name: &str, id: &str) -> Result<DeleteBucket> {
        let mut w = self.write().await?;
        let lock = if self.backend == super::Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!("SELECT name FROM buckets WHERE name = $1 AND id = $2{lock}");
        let exists = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?;
        if exists.is_none() {
            return Ok(DeleteBucket::Missing);
        }
        let object = sqlx::query("SELECT key FROM objects WHERE bucket = $1 LIMIT 1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?;
        if object.is_some() {
            return Ok(DeleteBucket::NotEmpty);
        }
        let uploads = sqlx::query("DELETE FROM uploads WHERE bucket = $1 RETURNING version_id")
            .bind(name)
            .fetch_all(&mut *w.tx)
            .await?;
        for row in &uploads {
            let version_id: String = row.try_get("version_id")?;
            retire_extents(&mut w.tx, &version_id, None).await?;
        }
        sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(DeleteBucket::Deleted {
            aborted_uploads: uploads.len(),
        })
    }
}
