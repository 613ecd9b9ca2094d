//! The settlement outbox: storage orders waiting for (or done by) the settlement worker.
//!
//! A declaration row is written in the transaction that makes its object visible, a deletion row
//! in the transaction that retires it, so the outbox never misses an order and never holds one
//! for an object that was not committed.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{
    Catalogue, CatalogueError, NewSettlement, ObjectRecord, Result, SettlementKind,
    SettlementRecord, SettlementState, now_ms,
};

const COLUMNS: &str = "id, kind, gateway, version_id, bucket, key, fid, owner, request, state, \
     block, reason, attempts, next_attempt_ms, created_ms, updated_ms";

fn record(row: &AnyRow) -> Result<SettlementRecord> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(SettlementRecord {
        id: row.try_get("id")?,
        kind: SettlementKind::parse(&kind)
            .ok_or_else(|| CatalogueError::Corrupt(format!("settlement kind {kind:?}")))?,
        gateway: row.try_get("gateway")?,
        version_id: row.try_get("version_id")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        fid: row.try_get("fid")?,
        owner: row.try_get("owner")?,
        request: row.try_get("request")?,
        state: SettlementState::parse(&state)
            .ok_or_else(|| CatalogueError::Corrupt(format!("settlement state {state:?}")))?,
        block: row.try_get("block")?,
        reason: row.try_get("reason")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// Queues the declaration (or the `none` state) of a version being committed.
pub(super) async fn enqueue_declaration(
    conn: &mut AnyConnection,
    object: &ObjectRecord,
    s: &NewSettlement,
) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO settlement (kind, gateway, version_id, bucket, key, fid, owner, request, state, \
         block, reason, attempts, next_attempt_ms, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, 0, $11, $12, $13)",
    )
    .bind(SettlementKind::Declare.as_str())
    .bind(&s.gateway)
    .bind(&object.version_id)
    .bind(&object.bucket)
    .bind(&object.key)
    .bind(s.fid.clone())
    .bind(s.owner.clone())
    .bind(s.request.clone())
    .bind(s.state.as_str())
    .bind(s.reason.clone())
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues the deletion of a retired version's order, if it has one that is (or will be) on chain.
pub(super) async fn enqueue_deletion(conn: &mut AnyConnection, version_id: &str) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO settlement (kind, gateway, version_id, bucket, key, fid, owner, request, state, \
         block, reason, attempts, next_attempt_ms, created_ms, updated_ms) \
         SELECT $1, gateway, version_id, bucket, key, fid, owner, NULL, $2, NULL, NULL, 0, $3, $4, $5 \
         FROM settlement WHERE version_id = $6 AND kind = $7 AND state IN ($8, $9)",
    )
    .bind(SettlementKind::Delete.as_str())
    .bind(SettlementState::Pending.as_str())
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(version_id)
    .bind(SettlementKind::Declare.as_str())
    .bind(SettlementState::Pending.as_str())
    .bind(SettlementState::Declared.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

impl Catalogue {
    /// The declaration row of an object version.
    pub async fn settlement_of_version(
        &self,
        version_id: &str,
    ) -> Result<Option<SettlementRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM settlement WHERE version_id = $1 AND kind = $2 ORDER BY id LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(version_id)
            .bind(SettlementKind::Declare.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Every row about `fid`, oldest first.
    pub async fn settlement_of_fid(&self, fid: &str) -> Result<Vec<SettlementRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM settlement WHERE fid = $1 ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(fid)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record).collect()
    }

    /// The most recent rows (any state), newest first.
    pub async fn settlement_recent(&self, limit: usize) -> Result<Vec<SettlementRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM settlement ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record).collect()
    }

    /// The oldest pending row of `gateway` that is due at `now_ms` and whose fid has no older
    /// pending row, so that a deletion never overtakes the declaration it undoes.
    pub async fn settlement_due(
        &self,
        gateway: &str,
        now_ms: i64,
    ) -> Result<Option<SettlementRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM settlement s WHERE state = $1 AND gateway = $2 \
             AND next_attempt_ms <= $3 AND NOT EXISTS (SELECT 1 FROM settlement p \
             WHERE p.fid = s.fid AND p.id < s.id AND p.state = $4) ORDER BY id LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(SettlementState::Pending.as_str())
            .bind(gateway)
            .bind(now_ms)
            .bind(SettlementState::Pending.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// How many rows `gateway` still has to settle.
    pub async fn settlement_pending_count(&self, gateway: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM settlement WHERE state = $1 AND gateway = $2")
                .bind(SettlementState::Pending.as_str())
                .bind(gateway)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Records the outcome of an attempt: a final state (with the block or reason), or another
    /// `Pending` try at `next_attempt_ms`.
    pub async fn settlement_update(
        &self,
        id: i64,
        state: SettlementState,
        block: Option<i64>,
        reason: Option<&str>,
        attempts: u32,
        next_attempt_ms: i64,
    ) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query(
            "UPDATE settlement SET state = $1, block = $2, reason = $3, attempts = $4, \
             next_attempt_ms = $5, updated_ms = $6 WHERE id = $7",
        )
        .bind(state.as_str())
        .bind(block)
        .bind(reason.map(str::to_string))
        .bind(i64::from(attempts))
        .bind(next_attempt_ms)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(())
    }
}
