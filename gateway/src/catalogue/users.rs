//! Users and their access keys.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{AccessKeyRecord, Catalogue, Result, User, now_ms};

fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_ms: row.try_get("created_ms")?,
        chain_account: row.try_get("chain_account")?,
        territory: row.try_get("territory")?,
    })
}

const USER_COLUMNS: &str = "id, name, created_ms, chain_account, territory";

fn key(row: &AnyRow) -> Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key: row.try_get("access_key")?,
        user_id: row.try_get("user_id")?,
        secret_sealed: row.try_get("secret_sealed")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Catalogue {
    /// Creates a user; `None` if the name is taken.
    pub async fn create_user(&self, name: &str) -> Result<Option<User>> {
        self.create_user_with(name, None, None).await
    }

    /// Creates a user with a chain account and default territory; `None` if the name is taken.
    pub async fn create_user_with(
        &self,
        name: &str,
        chain_account: Option<&str>,
        territory: Option<&str>,
    ) -> Result<Option<User>> {
        let mut w = self.write().await?;
        let taken = sqlx::query("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let u = User {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_string(),
            created_ms: now_ms(),
            chain_account: chain_account.map(str::to_string),
            territory: territory.map(str::to_string),
        };
        sqlx::query("INSERT INTO users (id, name, created_ms, chain_account, territory) VALUES ($1, $2, $3, $4, $5)")
            .bind(&u.id)
            .bind(&u.name)
            .bind(u.created_ms)
            .bind(u.chain_account.clone())
            .bind(u.territory.clone())
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(Some(u))
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY name"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user).collect()
    }

    /// Deletes a user and its keys; returns false if there is no such user. Refuses (returns the
    /// bucket count) while the user still owns buckets, so no data is orphaned.
    pub async fn delete_user(&self, name: &str) -> Result<Result<bool, i64>> {
        let mut w = self.write().await?;
        let Some(row) = sqlx::query("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?
        else {
            return Ok(Ok(false));
        };
        let id: String = row.try_get("id")?;
        let owned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM buckets WHERE owner_id = $1")
            .bind(&id)
            .fetch_one(&mut *w.tx)
            .await?;
        if owned > 0 {
            return Ok(Err(owned));
        }
        sqlx::query("DELETE FROM access_keys WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(Ok(true))
    }

    pub async fn create_key(&self, record: &AccessKeyRecord) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("INSERT INTO access_keys (access_key, user_id, secret_sealed, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(&record.access_key)
            .bind(&record.user_id)
            .bind(&record.secret_sealed)
            .bind(record.created_ms)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    pub async fn access_key(&self, access_key: &str) -> Result<Option<AccessKeyRecord>> {
        let row = sqlx::query("SELECT access_key, user_id, secret_sealed, created_ms FROM access_keys WHERE access_key = $1")
            .bind(access_key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(key).transpose()
    }

    pub async fn list_keys(&self, user_id: &str) -> Result<Vec<AccessKeyRecord>> {
        let rows = sqlx::query(
            "SELECT access_key, user_id, secret_sealed, created_ms FROM access_keys WHERE user_id = $1 ORDER BY created_ms",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key).collect()
    }

    /// Returns false if there was no such key.
    pub async fn delete_key(&self, access_key: &str) -> Result<bool> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM access_keys WHERE access_key = $1")
            .bind(access_key)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
