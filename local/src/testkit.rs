//! Real infrastructure for tests: a PostgreSQL cluster shared by the tests of one test binary
//! (each test gets its own fresh, migrated database) and an S3 server per test (each with its
//! own directory). Nothing is mocked; everything stops when the test process exits.

use std::sync::OnceLock;

use appraise_core::{
    db::{self, DbPool},
    objects::ObjectStore,
};

use crate::{
    postgres::Postgres,
    s3_server::{NotificationRule, S3Server},
};

/// The cluster of this test process, started on first use.
pub fn shared_postgres() -> &'static Postgres {
    static CLUSTER: OnceLock<Postgres> = OnceLock::new();
    CLUSTER.get_or_init(|| Postgres::start().expect("starting the test PostgreSQL cluster"))
}

/// A fresh database with the migrations applied: its URL and a pool.
pub async fn fresh_database() -> anyhow::Result<(String, DbPool)> {
    let cluster = shared_postgres();
    let url = cluster
        .create_database(&format!("test_{}", crate::unique_suffix()))
        .await?;
    let pool = db::pool(&url, 8)?;
    db::connect_and_migrate(&pool, std::time::Duration::from_secs(30)).await?;
    Ok((url, pool))
}

/// The bucket every test uses (each test has its own server, so they never collide).
pub const BUCKET: &str = "appraise";

/// An S3 server on a fresh temporary directory, with the bucket created.
pub async fn s3_server(rules: Vec<NotificationRule>) -> anyhow::Result<(S3Server, ObjectStore)> {
    let server = S3Server::start_in_temp_dir(rules).await?;
    let objects = ObjectStore::new(&server.object_store_config(BUCKET));
    objects.ensure_bucket().await?;
    Ok((server, objects))
}
