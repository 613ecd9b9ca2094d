//! Buckets.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Bucket, Catalogue, Result};

fn bucket(row: &AnyRow) -> Result<Bucket> {
    Ok(Bucket {
        name: row.try_get("name")?,
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
    Deleted,
    Missing,
    NotEmpty,
}

impl Catalogue {
    pub async fn create_bucket(&self, b: &Bucket) -> Result<CreateBucket> {
        let mut w = self.write().await?;
        let existing = sqlx::query("SELECT owner_id FROM buckets WHERE name = $1")
            .bind(&b.name)
            .fetch_optional(&mut *w.tx)
            .await?;
        if let Some(row) = existing {
            return Ok(CreateBucket::Exists {
                owner_id: row.try_get("owner_id")?,
            });
        }
        sqlx::query(
            "INSERT INTO buckets (name, owner_id, profile, created_ms, territory) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&b.name)
        .bind(&b.owner_id)
        .bind(&b.profile)
        .bind(b.created_ms)
        .bind(b.territory.clone())
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(CreateBucket::Created)
    }

    pub async fn bucket(&self, name: &str) -> Result<Option<Bucket>> {
        let row = sqlx::query(
            "SELECT name, owner_id, profile, created_ms, territory FROM buckets WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(bucket).transpose()
    }

    pub async fn list_buckets(&self, owner_id: &str) -> Result<Vec<Bucket>> {
        let rows = sqlx::query("SELECT name, owner_id, profile, created_ms, territory FROM buckets WHERE owner_id = $1 ORDER BY name")
            .bind(owner_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(bucket).collect()
    }

    /// Deletes an empty bucket (no objects and no multipart uploads in progress).
    pub async fn delete_bucket(&self, name: &str) -> Result<DeleteBucket> {
        let mut w = self.write().await?;
        let exists = sqlx::query("SELECT name FROM buckets WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?;
        if exists.is_none() {
            return Ok(DeleteBucket::Missing);
        }
        let object = sqlx::query("SELECT key FROM objects WHERE bucket = $1 LIMIT 1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?;
        let upload = sqlx::query("SELECT upload_id FROM uploads WHERE bucket = $1 LIMIT 1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?;
        if object.is_some() || upload.is_some() {
            return Ok(DeleteBucket::NotEmpty);
        }
        sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(DeleteBucket::Deleted)
    }
}
