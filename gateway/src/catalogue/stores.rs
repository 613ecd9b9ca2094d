//! The store registry's table: every fragment store under its persistent id.

use std::collections::BTreeSet;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Backend, Catalogue, CatalogueError, Result};
use crate::store::{FragmentHash, Location, StoreInfo, StoreKind, StoreState};

const COLUMNS: &str = "id, kind, endpoint, lat, lon, country, region, zone, state, created_ms";

/// Advisory lock that gateways sharing a PostgreSQL catalogue take to register the stores of an
/// upgraded deployment one at a time.
const ADOPT_LOCK: i64 = 7_261_002;

fn store(row: &AnyRow) -> Result<StoreInfo> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(StoreInfo {
        id: row.try_get("id")?,
        kind: StoreKind::parse(&kind)
            .ok_or_else(|| CatalogueError::Corrupt(format!("store kind {kind:?}")))?,
        endpoint: row.try_get("endpoint")?,
        location: Location {
            lat: row.try_get("lat")?,
            lon: row.try_get("lon")?,
            country: row.try_get("country")?,
            region: row.try_get("region")?,
            zone: row.try_get("zone")?,
        },
        state: StoreState::parse(&state)
            .ok_or_else(|| CatalogueError::Corrupt(format!("store state {state:?}")))?,
        created_ms: row.try_get("created_ms")?,
    })
}

async fn insert(conn: &mut sqlx::AnyConnection, info: &StoreInfo) -> Result<bool> {
    let loc = &info.location;
    let done = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO stores ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (id) DO NOTHING"
    )))
    .bind(&info.id)
    .bind(info.kind.as_str())
    .bind(&info.endpoint)
    .bind(loc.lat)
    .bind(loc.lon)
    .bind(loc.country.clone())
    .bind(loc.region.clone())
    .bind(loc.zone.clone())
    .bind(info.state.as_str())
    .bind(info.created_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Catalogue {
    /// Registers a store; false if its id is taken already.
    pub async fn register_store(&self, info: &StoreInfo) -> Result<bool> {
        let mut w = self.write().await?;
        let added = insert(&mut w.tx, info).await?;
        w.tx.commit().await?;
        Ok(added)
    }

    /// Registers the first stores of a catalogue all together, and only if it has none yet
    /// (returns false then): the one-time adoption of an upgraded deployment's stores must
    /// happen once, even with several gateways starting at the same moment.
    pub async fn register_first_stores(&self, infos: &[StoreInfo]) -> Result<bool> {
        let mut w = self.write().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ADOPT_LOCK)
                .execute(&mut *w.tx)
                .await?;
        }
        let registered: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stores")
            .fetch_one(&mut *w.tx)
            .await?;
        if registered > 0 {
            return Ok(false);
        }
        for info in infos {
            if !insert(&mut w.tx, info).await? {
                return Err(CatalogueError::Corrupt(format!(
                    "store {} is listed twice",
                    info.id
                )));
            }
        }
        w.tx.commit().await?;
        Ok(true)
    }

    pub async fn store(&self, id: &str) -> Result<Option<StoreInfo>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM stores WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(store).transpose()
    }

    /// Every registered store, oldest first.
    pub async fn list_stores(&self) -> Result<Vec<StoreInfo>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM stores ORDER BY created_ms, id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(store).collect()
    }

    /// Records where a store is reached now (a directory mounted elsewhere, say).
    pub async fn set_store_endpoint(&self, id: &str, endpoint: &str) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE stores SET endpoint = $1 WHERE id = $2")
            .bind(endpoint)
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// Drops the registration of a store that never held anything: one registered by a start
    /// that then found another gateway had named the directory first.
    pub async fn forget_store(&self, id: &str) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM stores WHERE id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// Every store id that fragments or the GC queue name. Reads the whole fragment table: meant
    /// for the one-time upgrade of a catalogue with no registered stores.
    pub async fn store_ids_in_use(&self) -> Result<BTreeSet<String>> {
        let rows = sqlx::query("SELECT store FROM fragments UNION SELECT store FROM gc_queue")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("store")?))
            .collect()
    }

    /// The stores the catalogue places a fragment on.
    pub async fn stores_holding(&self, hash: FragmentHash) -> Result<BTreeSet<String>> {
        let rows = sqlx::query("SELECT DISTINCT store FROM fragments WHERE hash = $1")
            .bind(hash.to_hex())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("store")?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::tests::{
        bid, extent, make_bucket, object, postgres_catalogue, sqlite_catalogue,
    };
    use super::*;

    async fn registry(cat: &Catalogue) {
        assert!(cat.list_stores().await.unwrap().is_empty());
        let mut a = StoreInfo::local("st-aaaa", Path::new("/mnt/a/deoss"), 10);
        a.location = Location {
            lat: Some(52.52),
            lon: Some(-13.405),
            country: Some("DE".into()),
            region: Some("eu-central".into()),
            zone: Some("fra-1".into()),
        };
        let b = StoreInfo::local("st-bbbb", Path::new("/mnt/b/deoss"), 20);
        assert!(cat.register_store(&a).await.unwrap());
        assert!(cat.register_store(&b).await.unwrap());
        // An id is registered once; the first registration stands.
        let mut again = b.clone();
        again.endpoint = "/elsewhere".into();
        assert!(!cat.register_store(&again).await.unwrap());
        assert_eq!(cat.store("st-aaaa").await.unwrap(), Some(a.clone()));
        assert_eq!(cat.store("st-zzzz").await.unwrap(), None);
        assert_eq!(cat.list_stores().await.unwrap(), [a.clone(), b.clone()]);

        cat.set_store_endpoint("st-bbbb", "/mnt/c/deoss")
            .await
            .unwrap();
        assert_eq!(
            cat.store("st-bbbb").await.unwrap().unwrap().endpoint,
            "/mnt/c/deoss"
        );
        cat.forget_store("st-bbbb").await.unwrap();
        assert_eq!(cat.list_stores().await.unwrap(), [a]);
        // Once any store is registered, the first-stores registration refuses.
        let c = StoreInfo::local("local-00", Path::new("/d/00"), 30);
        assert!(!cat.register_first_stores(&[c]).await.unwrap());
        assert!(cat.store("local-00").await.unwrap().is_none());
    }

    async fn first_stores_and_ids_in_use(cat: &Catalogue) {
        let mut e = extent(0, 3);
        for (i, f) in e.fragments.iter_mut().enumerate() {
            f.store = format!("local-{i:02}");
        }
        let shared = e.fragments[1].hash;
        make_bucket(cat, "b").await;
        cat.commit_object(&bid("b"), &object("b", "k", "v1"), &[e])
            .await
            .unwrap();
        let ids = cat.store_ids_in_use().await.unwrap();
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            ["local-00", "local-01", "local-02"]
        );
        assert_eq!(
            cat.stores_holding(shared)
                .await
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["local-01"]
        );
        assert!(
            cat.stores_holding(FragmentHash::of(b"none"))
                .await
                .unwrap()
                .is_empty()
        );
        let first: Vec<StoreInfo> = (0..3)
            .map(|i| StoreInfo::local(format!("local-{i:02}"), Path::new("/d"), i))
            .collect();
        assert!(cat.register_first_stores(&first).await.unwrap());
        assert_eq!(cat.list_stores().await.unwrap(), first);
        assert!(!cat.register_first_stores(&first).await.unwrap());
    }

    #[tokio::test]
    async fn registry_on_sqlite() {
        let (_dir, cat) = sqlite_catalogue().await;
        registry(&cat).await;
        let (_dir, cat) = sqlite_catalogue().await;
        first_stores_and_ids_in_use(&cat).await;
    }

    #[tokio::test]
    async fn registry_on_postgres() {
        let Some(cat) = postgres_catalogue().await else {
            return;
        };
        registry(&cat).await;
        let Some(cat) = postgres_catalogue().await else {
            return;
        };
        first_stores_and_ids_in_use(&cat).await;
    }
}
