//! The catalogue: users, buckets, objects, their layout and multipart uploads, in SQL.
//!
//! One code path serves SQLite (the embedded default, a file in the data directory, WAL mode) and
//! PostgreSQL (several gateways sharing one catalogue), through sqlx's `Any` driver: queries use
//! `$N` placeholders, which both accept. An object becomes visible only when the transaction that
//! inserts its row, extents and fragments commits, and the same transaction queues the fragments
//! of whatever it replaced for garbage collection, so a crash leaves the old object or the new
//! one, never a mix.

mod batch;
pub mod buckets;
mod gc;
pub mod multipart;
pub mod objects;
pub mod records;
mod schema;
mod settlement;
mod stores;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use records::*;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    #[error("catalogue database error")]
    Db(#[from] sqlx::Error),
    #[error("catalogue record is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// A write found that its bucket no longer exists (deleted, perhaps created again by
    /// someone else, since the write was admitted). Nothing was written.
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    /// A write found that its multipart upload was completed or aborted meanwhile.
    #[error("multipart upload {0} does not exist")]
    NoSuchUpload(String),
    /// The shared commit of a group of writers failed (see `batch`).
    #[error("catalogue commit failed: {0}")]
    Group(String),
}

pub type Result<T, E = CatalogueError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time: this process's writers take turns here rather than
    /// spinning on SQLite's lock.
    write_turn: Arc<tokio::sync::Mutex<()>>,
    /// Writers waiting to be committed together (SQLite group commit, see `batch`).
    queue: Arc<batch::WriteQueue>,
}

/// A write transaction, holding the SQLite writer turn for its lifetime.
pub(crate) struct WriteTx<'a> {
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Catalogue {
    /// Opens the catalogue at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(CatalogueError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            pool = pool.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            });
        } else {
            pool = pool.max_connections(16);
        }
        let pool = pool.connect_with(options).await?;
        let catalogue = Self {
            pool,
            backend,
            write_turn: Arc::default(),
            queue: Arc::default(),
        };
        catalogue.migrate().await?;
        Ok(catalogue)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) async fn write(&self) -> Result<WriteTx<'_>> {
        match self.backend {
            // IMMEDIATE takes SQLite's write lock up front (waiting up to busy_timeout): a
            // deferred transaction that reads first fails outright when another process (say
            // `deoss admin`) wrote in between.
            Backend::Sqlite => {
                let turn = self.write_turn.lock().await;
                Ok(WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: Some(turn),
                })
            }
            Backend::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            }),
        }
    }

    async fn migrate(&self) -> Result<()> {
        let migrations = match self.backend {
            Backend::Sqlite => schema::SQLITE,
            Backend::Postgres => schema::POSTGRES,
        };
        let mut w = self.write().await?;
        if self.backend == Backend::Postgres {
            // Gateways starting together must not both migrate.
            sqlx::query("SELECT pg_advisory_xact_lock(7261001)")
                .execute(&mut *w.tx)
                .await?;
        }
        w.tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&mut *w.tx)
            .await?;
        let current = current.unwrap_or(0) as usize;
        for (i, sql) in migrations.iter().enumerate().skip(current) {
            w.tx.execute(*sql).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind((i + 1) as i64)
                .execute(&mut *w.tx)
                .await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

#[cfg(test)]
pub(crate) mod tests;
