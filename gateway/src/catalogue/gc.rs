//! What garbage collection needs from the catalogue.

use std::collections::HashSet;

use sqlx::Row;

use super::{Catalogue, CatalogueError, GcEntry, Result};
use crate::store::FragmentHash;

impl Catalogue {
    /// The oldest queued fragments.
    pub async fn gc_batch(&self, limit: usize) -> Result<Vec<GcEntry>> {
        self.gc_due(0, i64::MAX, limit).await
    }

    /// Queued fragments after entry `after_id`, queued before `enqueued_before_ms`, oldest first.
    pub async fn gc_due(
        &self,
        after_id: i64,
        enqueued_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<GcEntry>> {
        let rows = sqlx::query(
            "SELECT id, hash, store, version_id FROM gc_queue \
             WHERE id > $1 AND enqueued_ms < $2 ORDER BY id LIMIT $3",
        )
        .bind(after_id)
        .bind(enqueued_before_ms)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let hash: String = row.try_get("hash")?;
                Ok(GcEntry {
                    id: row.try_get("id")?,
                    version_id: row.try_get("version_id")?,
                    hash: FragmentHash::from_hex(&hash)
                        .ok_or_else(|| CatalogueError::Corrupt(format!("gc hash {hash:?}")))?,
                    store: row.try_get("store")?,
                })
            })
            .collect()
    }

    /// Whether any live object, part or upload still references the fragment on that store
    /// (identical fragments are stored once).
    pub async fn fragment_referenced(&self, hash: FragmentHash, store: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT version_id FROM fragments WHERE hash = $1 AND store = $2 LIMIT 1")
                .bind(hash.to_hex())
                .bind(store)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.is_some())
    }

    /// Removes handled entries from the queue, in one transaction (one log sync for a batch).
    pub async fn gc_done_many(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut w = self.write().await?;
        for id in ids {
            sqlx::query("DELETE FROM gc_queue WHERE id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    /// Which of `hashes` the catalogue references on `store` (at most a sweep page of them:
    /// one parameter each).
    pub async fn referenced_among(
        &self,
        store: &str,
        hashes: &[FragmentHash],
    ) -> Result<HashSet<FragmentHash>> {
        if hashes.is_empty() {
            return Ok(HashSet::new());
        }
        let placeholders: Vec<String> = (0..hashes.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT DISTINCT hash FROM fragments WHERE store = $1 AND hash IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(store);
        for h in hashes {
            q = q.bind(h.to_hex());
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = HashSet::with_capacity(rows.len());
        for row in &rows {
            let hash: String = row.try_get("hash")?;
            out.insert(
                FragmentHash::from_hex(&hash)
                    .ok_or_else(|| CatalogueError::Corrupt(format!("hash {hash:?}")))?,
            );
        }
        Ok(out)
    }
}
