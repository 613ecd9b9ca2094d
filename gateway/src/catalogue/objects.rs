//! Objects, their extents and fragments.

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use super::buckets::{hold_bucket, is_postgres};
use super::{
    Catalogue, CatalogueError, Checksum, ExtentRecord, FragmentRecord, KeyWrapRecord,
    NewSettlement, ObjectMeta, ObjectRecord, Result, now_ms,
};
use crate::store::FragmentHash;

const OBJECT_COLUMNS: &str = "bucket, key, version_id, size, etag, last_modified_ms, meta, storage_class, \
     checksum, parts_count";

/// The same, as `o.` of a join, with the version's key wraps (one row per wrap).
const OBJECT_WITH_WRAPS: &str = "SELECT o.bucket, o.key, o.version_id, o.size, o.etag, o.last_modified_ms, \
     o.meta, o.storage_class, o.checksum, o.parts_count, \
     w.kind AS wrap_kind, w.wrapped AS wrap_wrapped, w.commitment AS wrap_commitment \
     FROM objects o LEFT JOIN key_wraps w ON w.version_id = o.version_id";

/// Rows per multi-row INSERT of fragments (6 parameters each, well under every bind limit).
const FRAGMENT_BATCH: usize = 100;

pub(super) fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| CatalogueError::Corrupt(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("catalogue records serialize")
}

pub(super) fn meta_json(meta: &ObjectMeta) -> String {
    to_json(meta)
}

fn object(row: &AnyRow) -> Result<ObjectRecord> {
    let checksum: Option<String> = row.try_get("checksum")?;
    Ok(ObjectRecord {
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        version_id: row.try_get("version_id")?,
        size: row.try_get::<i64, _>("size")? as u64,
        etag: row.try_get("etag")?,
        last_modified_ms: row.try_get("last_modified_ms")?,
        meta: json(&row.try_get::<String, _>("meta")?)?,
        storage_class: row.try_get("storage_class")?,
        wraps: Vec::new(),
        checksum: checksum.as_deref().map(json::<Checksum>).transpose()?,
        parts_count: row.try_get::<i64, _>("parts_count")? as u32,
    })
}

/// The key wrap a joined row carries, if any.
fn joined_wrap(row: &AnyRow) -> Result<Option<KeyWrapRecord>> {
    let Some(kind) = row.try_get::<Option<String>, _>("wrap_kind")? else {
        return Ok(None);
    };
    Ok(Some(KeyWrapRecord {
        kind,
        wrapped: row.try_get("wrap_wrapped")?,
        commitment: row.try_get("wrap_commitment")?,
    }))
}

/// Records the wraps of a version's data key.
pub(super) async fn insert_wraps(
    conn: &mut AnyConnection,
    version_id: &str,
    wraps: &[KeyWrapRecord],
) -> Result<()> {
    for w in wraps {
        sqlx::query(
            "INSERT INTO key_wraps (version_id, kind, wrapped, commitment) VALUES ($1, $2, $3, $4)",
        )
        .bind(version_id)
        .bind(&w.kind)
        .bind(&w.wrapped)
        .bind(w.commitment.clone())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The wraps of a version's data key.
pub(super) async fn load_wraps(
    conn: &mut AnyConnection,
    version_id: &str,
) -> Result<Vec<KeyWrapRecord>> {
    let rows = sqlx::query(
        "SELECT kind, wrapped, commitment FROM key_wraps WHERE version_id = $1 ORDER BY kind",
    )
    .bind(version_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(KeyWrapRecord {
                kind: row.try_get("kind")?,
                wrapped: row.try_get("wrapped")?,
                commitment: row.try_get("commitment")?,
            })
        })
        .collect()
}

/// A listing entry: just what ListObjects returns.
#[derive(Debug, Clone)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub storage_class: String,
}

/// What committing an object replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Nothing,
    Previous,
}

impl Catalogue {
    pub async fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        // The row and its key wraps in one round trip (one row per wrap).
        let sql = format!("{OBJECT_WITH_WRAPS} WHERE o.bucket = $1 AND o.key = $2");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(bucket)
            .bind(key)
            .fetch_all(self.pool())
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut record = object(first)?;
        for row in &rows {
            record.wraps.extend(joined_wrap(row)?);
        }
        Ok(Some(record))
    }

    /// The extents of a version (or of an upload in progress), in part order, with fragments.
    pub async fn extents(&self, version_id: &str) -> Result<Vec<ExtentRecord>> {
        let mut conn = self.pool().acquire().await?;
        load_extents(&mut conn, version_id).await
    }

    /// Makes an object visible: inserts its row, extents and fragments and retires whatever
    /// object had the key before, in one transaction. `bucket_id` is the bucket incarnation the
    /// write was admitted to: if the bucket was deleted since, nothing is written
    /// ([`CatalogueError::NoSuchBucket`]).
    pub async fn commit_object(
        &self,
        bucket_id: &str,
        record: &ObjectRecord,
        extents: &[ExtentRecord],
    ) -> Result<Replaced> {
        self.commit_object_settled(bucket_id, record, extents, None)
            .await
    }

    /// [`Catalogue::commit_object`], also enqueueing the object's settlement (its storage order,
    /// or why it has none) in the same transaction, so that an object is visible exactly when
    /// its order is in the outbox. A replaced version's order gets a deletion queued.
    pub async fn commit_object_settled(
        &self,
        bucket_id: &str,
        record: &ObjectRecord,
        extents: &[ExtentRecord],
        settlement: Option<&NewSettlement>,
    ) -> Result<Replaced> {
        let (record, extents, settlement) = (record.clone(), extents.to_vec(), settlement.cloned());
        let bucket_id = bucket_id.to_string();
        self.write_grouped(Box::new(move |conn| {
            Box::pin(async move {
                hold_bucket(conn, &record.bucket, &bucket_id).await?;
                let replaced = replace_object_row(conn, &record).await?;
                insert_wraps(conn, &record.version_id, &record.wraps).await?;
                for e in &extents {
                    insert_extent(conn, &record.version_id, e).await?;
                }
                if let Some(s) = &settlement {
                    super::settlement::enqueue_declaration(conn, &record, s).await?;
                }
                Ok(replaced)
            })
        }))
        .await
    }

    /// Deletes an object of bucket incarnation `bucket_id`; its fragments go to the
    /// garbage-collection queue.
    pub async fn delete_object(
        &self,
        bucket: &str,
        bucket_id: &str,
        key: &str,
    ) -> Result<Replaced> {
        let (bucket, bucket_id, key) = (bucket.to_string(), bucket_id.to_string(), key.to_string());
        self.write_grouped(Box::new(move |conn| {
            Box::pin(async move {
                hold_bucket(conn, &bucket, &bucket_id).await?;
                lock_key(conn, &bucket, &key).await?;
                retire_object(conn, &bucket, &key).await
            })
        }))
        .await
    }

    /// Up to `limit` objects of `bucket` whose keys start with `prefix` and sort after `after`,
    /// in key order.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<ObjectSummary>> {
        // Keys starting with `prefix` are exactly those >= prefix and < prefix + U+10FFFF, in
        // bytewise order, which avoids LIKE and its escaping.
        let upper = format!("{prefix}\u{10FFFF}");
        let lower_op = if after >= prefix { ">" } else { ">=" };
        let lower = if after >= prefix { after } else { prefix };
        let sql = format!(
            "SELECT key, size, etag, last_modified_ms, storage_class FROM objects \
             WHERE bucket = $1 AND key {lower_op} $2 AND key < $3 ORDER BY key LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(bucket)
            .bind(lower)
            .bind(upper)
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ObjectSummary {
                    key: row.try_get("key")?,
                    size: row.try_get::<i64, _>("size")? as u64,
                    etag: row.try_get("etag")?,
                    last_modified_ms: row.try_get("last_modified_ms")?,
                    storage_class: row.try_get("storage_class")?,
                })
            })
            .collect()
    }
}

/// Serializes writers of one key on PostgreSQL for the rest of the transaction. Without it two
/// PUTs of a new key both find nothing to replace and the second insert fails on the primary
/// key; with it the second waits, then replaces the first: the last writer wins, as in S3.
/// (SQLite runs one writer at a time.)
pub(super) async fn lock_key(conn: &mut AnyConnection, bucket: &str, key: &str) -> Result<()> {
    if is_postgres(conn) {
        // Bucket names cannot contain '/', so "bucket/key" names one key.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{bucket}/{key}"))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Retires whatever object has the record's key and inserts the record's row.
pub(super) async fn replace_object_row(
    conn: &mut AnyConnection,
    r: &ObjectRecord,
) -> Result<Replaced> {
    lock_key(&mut *conn, &r.bucket, &r.key).await?;
    let replaced = retire_object(&mut *conn, &r.bucket, &r.key).await?;
    insert_object(conn, r).await?;
    Ok(replaced)
}

async fn insert_object(conn: &mut AnyConnection, r: &ObjectRecord) -> Result<()> {
    let sql = format!(
        "INSERT INTO objects ({OBJECT_COLUMNS}, wrapped_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(&r.bucket)
        .bind(&r.key)
        .bind(&r.version_id)
        .bind(r.size as i64)
        .bind(&r.etag)
        .bind(r.last_modified_ms)
        .bind(meta_json(&r.meta))
        .bind(&r.storage_class)
        .bind(r.checksum.as_ref().map(to_json))
        .bind(i64::from(r.parts_count))
        // The key wraps live in `key_wraps` since migration 5; this column stays empty.
        .bind(Vec::<u8>::new())
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes the object at (bucket, key), if any, queueing its fragments for collection.
async fn retire_object(conn: &mut AnyConnection, bucket: &str, key: &str) -> Result<Replaced> {
    // One statement, not a lookup and a delete: every statement is a round trip to the
    // database's worker thread, and small PUTs and DELETEs are made of little else.
    let row =
        sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2 RETURNING version_id")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else {
        return Ok(Replaced::Nothing);
    };
    let version_id: String = row.try_get("version_id")?;
    retire_extents(&mut *conn, &version_id, None).await?;
    super::settlement::enqueue_deletion(conn, &version_id).await?;
    Ok(Replaced::Previous)
}

/// Queues the fragments of a version's extents (all, or one part) for collection and deletes them.
pub(super) async fn retire_extents(
    conn: &mut AnyConnection,
    version_id: &str,
    part: Option<u32>,
) -> Result<()> {
    let part_filter = if part.is_some() { " AND part = $3" } else { "" };
    let queue = format!(
        "INSERT INTO gc_queue (hash, store, enqueued_ms, version_id) SELECT hash, store, $1, version_id FROM fragments WHERE version_id = $2{part_filter}"
    );
    let mut q = sqlx::query::<Any>(AssertSqlSafe(queue))
        .bind(now_ms())
        .bind(version_id);
    if let Some(p) = part {
        q = q.bind(i64::from(p));
    }
    q.execute(&mut *conn).await?;
    // A whole version retired takes its key wraps along.
    let tables: &[&str] = if part.is_some() {
        &["fragments", "extents"]
    } else {
        &["fragments", "extents", "key_wraps"]
    };
    for table in tables {
        let filter = if part.is_some() { " AND part = $2" } else { "" };
        let sql = format!("DELETE FROM {table} WHERE version_id = $1{filter}");
        let mut q = sqlx::query::<Any>(AssertSqlSafe(sql)).bind(version_id);
        if let Some(p) = part {
            q = q.bind(i64::from(p));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn insert_extent(
    conn: &mut AnyConnection,
    version_id: &str,
    e: &ExtentRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO extents (version_id, part, size, md5, nonce_prefix, inline_data, k, m, fragment_size, checksum, created_ms, segment_hashes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(version_id)
    .bind(i64::from(e.part))
    .bind(e.size as i64)
    .bind(&e.md5)
    .bind(e.nonce_prefix.to_vec())
    .bind(e.inline_data.clone())
    .bind(i64::from(e.k))
    .bind(i64::from(e.m))
    .bind(i64::from(e.fragment_size))
    .bind(e.checksum.as_ref().map(to_json))
    .bind(e.created_ms)
    .bind(e.segment_hashes.as_deref().map(join_hashes))
    .execute(&mut *conn)
    .await?;
    for batch in e.fragments.chunks(FRAGMENT_BATCH) {
        let mut sql = String::from(
            "INSERT INTO fragments (version_id, part, segment, idx, hash, store) VALUES ",
        );
        for i in 0..batch.len() {
            let b = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            ));
        }
        let mut q = sqlx::query::<Any>(AssertSqlSafe(sql));
        for f in batch {
            q = q
                .bind(version_id)
                .bind(i64::from(e.part))
                .bind(i64::from(f.segment))
                .bind(i64::from(f.idx))
                .bind(f.hash.to_hex())
                .bind(f.store.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

fn join_hashes(hashes: &[FragmentHash]) -> String {
    hashes
        .iter()
        .map(FragmentHash::to_hex)
        .collect::<Vec<_>>()
        .join(",")
}

fn split_hashes(text: &str) -> Result<Vec<FragmentHash>> {
    text.split(',')
        .filter(|h| !h.is_empty())
        .map(|h| {
            FragmentHash::from_hex(h)
                .ok_or_else(|| CatalogueError::Corrupt(format!("segment hash {h:?}")))
        })
        .collect()
}

pub(super) async fn load_extents(
    conn: &mut AnyConnection,
    version_id: &str,
) -> Result<Vec<ExtentRecord>> {
    let rows = sqlx::query(
        "SELECT part, size, md5, nonce_prefix, inline_data, k, m, fragment_size, checksum, created_ms, segment_hashes \
         FROM extents WHERE version_id = $1 ORDER BY part",
    )
    .bind(version_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut extents = Vec::with_capacity(rows.len());
    for row in &rows {
        let prefix: Vec<u8> = row.try_get("nonce_prefix")?;
        let checksum: Option<String> = row.try_get("checksum")?;
        let segment_hashes: Option<String> = row.try_get("segment_hashes")?;
        extents.push(ExtentRecord {
            part: row.try_get::<i64, _>("part")? as u32,
            size: row.try_get::<i64, _>("size")? as u64,
            md5: row.try_get("md5")?,
            nonce_prefix: prefix
                .try_into()
                .map_err(|_| CatalogueError::Corrupt("nonce prefix length".into()))?,
            inline_data: row.try_get("inline_data")?,
            k: row.try_get::<i64, _>("k")? as u32,
            m: row.try_get::<i64, _>("m")? as u32,
            fragment_size: row.try_get::<i64, _>("fragment_size")? as u32,
            checksum: checksum.as_deref().map(json::<Checksum>).transpose()?,
            created_ms: row.try_get("created_ms")?,
            segment_hashes: segment_hashes.as_deref().map(split_hashes).transpose()?,
            fragments: Vec::new(),
        });
    }
    let rows = sqlx::query("SELECT part, segment, idx, hash, store FROM fragments WHERE version_id = $1 ORDER BY part, segment, idx")
        .bind(version_id)
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        let part = row.try_get::<i64, _>("part")? as u32;
        let hash: String = row.try_get("hash")?;
        let f = FragmentRecord {
            segment: row.try_get::<i64, _>("segment")? as u32,
            idx: row.try_get::<i64, _>("idx")? as u32,
            hash: FragmentHash::from_hex(&hash)
                .ok_or_else(|| CatalogueError::Corrupt(format!("fragment hash {hash:?}")))?,
            store: row.try_get("store")?,
        };
        if let Some(e) = extents.iter_mut().find(|e| e.part == part) {
            e.fragments.push(f);
        }
    }
    Ok(extents)
}
