//! The gateway on a PostgreSQL catalogue (when `DEOSS_TEST_POSTGRES_URL` names a server).

use sqlx::AssertSqlSafe;

use crate::harness::{Server, data};

/// A fresh database on the test server, or `None` (a skip) when none is configured outside CI.
async fn fresh_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("DEOSS_TEST_POSTGRES_URL") else {
        deoss_chain_client::testkit::skip(
            "the gateway on PostgreSQL needs DEOSS_TEST_POSTGRES_URL (a PostgreSQL server)",
        );
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("deoss_e2e_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

#[tokio::test]
async fn gateway_on_postgres() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let mut server = Server::start_with(&["--database-url", &url]);
    let s3 = server.client();
    s3.create_bucket().bucket("pg-bucket").send().await.unwrap();
    let big = data(9 * 1024 * 1024, 1);
    s3.put_object()
        .bucket("pg-bucket")
        .key("big")
        .body(big.clone().into())
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("pg-bucket")
        .key("small")
        .body(b"tiny".to_vec().into())
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = s3
        .list_objects_v2()
        .bucket("pg-bucket")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert_eq!(keys, ["big", "small"]);
    // The catalogue outlives the process.
    server.restart();
    let s3 = server.client();
    let got = s3
        .get_object()
        .bucket("pg-bucket")
        .key("big")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert!(got.into_bytes().as_ref() == big.as_slice());
    s3.delete_object()
        .bucket("pg-bucket")
        .key("big")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("pg-bucket")
        .key("small")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("pg-bucket").send().await.unwrap();
}
