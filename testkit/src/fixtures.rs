//! Real infrastructure for tests: a PostgreSQL cluster shared by the tests of one test binary
//! (each test gets its own fresh, migrated database) and an S3 server per test (each with its
//! own directory). Nothing is mocked; everything stops when the test process exits.

use std::sync::OnceLock;

use appraise_core::{
    db::{self, DbPool},
    events::ObjectCreated,
    objects::ObjectStore,
    rng::SplitMix64,
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

/// The one value a query returns (e.g. `SELECT count(*) FROM …`); panics, as a test should,
/// when the database fails or the query returns no row.
pub async fn query_value<T>(db: &DbPool, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    db.get()
        .await
        .expect("a database connection")
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .get(0)
}

/// The first column of every row a query returns, in order; panics, as a test should, when
/// the database fails.
pub async fn query_column<T>(db: &DbPool, sql: &str) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    db.get()
        .await
        .expect("a database connection")
        .query(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The tools virtualenv `scripts/setup-tools.sh` fills: `$APPRAISE_TOOLS_VENV` (a relative path
/// is from the workspace root) or `target/tools-venv`.
pub fn tools_venv() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit crate sits in the workspace");
    root.join(std::env::var_os("APPRAISE_TOOLS_VENV").unwrap_or_else(|| "target/tools-venv".into()))
}

/// What a test does when a tool it needs is missing: under CI (`CI` set) that is a failure,
/// and the panic says `message`; elsewhere the test is skipped, with `message` on stderr (the
/// caller returns).
pub fn skip_without_tool(message: &str) {
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("SKIPPED: {message}");
}

/// An S3 server on a fresh temporary directory, with the bucket created.
pub async fn s3_server(rules: Vec<NotificationRule>) -> anyhow::Result<(S3Server, ObjectStore)> {
    let server = S3Server::start_in_temp_dir(rules).await?;
    let objects = ObjectStore::new(&server.object_store_config(BUCKET));
    objects.ensure_bucket().await?;
    Ok((server, objects))
}

/// An object-created event for `key` in the test bucket, as a stage receives it.
pub fn object_created(key: &str) -> ObjectCreated {
    ObjectCreated {
        bucket: BUCKET.into(),
        key: key.to_owned(),
        size: None,
        etag: None,
        event_name: "ObjectCreated:Put".into(),
    }
}

const STATES: [&str; 4] = ["Texas", "Ohio", "California", "Florida"];

/// Records batch `batch` as ingested and processed (their runs too), with `rows` synthetic
/// clean listings whose price follows size and state; `scale` multiplies sizes and prices
/// (1.0: the usual market; 2.0: a drifted one). What train reads, without running ingest and process.
pub async fn insert_clean_batch(
    db: &DbPool,
    batch: i32,
    rows: usize,
    scale: f64,
) -> anyhow::Result<()> {
    let mut client = db.get().await?;
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "INSERT INTO ops.batches (batch_number, group_number, rows_received, rows_sampled,
                 rows_flagged, sample_seed, response_key, response_bytes, manifest_key)
             VALUES ($1, 9, $2, $2, 0, 0, 'r', 0, 'm')",
            &[&batch, &(rows as i32)],
        )
        .await?;
    transaction
        .execute(
            "INSERT INTO ops.clean_batches (batch_number, rows_in, rows_kept, dropped, stats, rules, manifest_key)
             VALUES ($1, $2, $2, '{}', '{}', '{}', 'c')",
            &[&batch, &(rows as i32)],
        )
        .await?;
    // As ingest and process record their runs (`appraise_core::runs`).
    transaction
        .execute(
            "INSERT INTO ops.stage_runs (batch_number, stage, state, started_at, duration_seconds,
                                         rows_in, rows_out)
             VALUES ($1, 'ingest', 'done', now(), 0, $2, $2), ($1, 'process', 'done', now(), 0, $2, $2)",
            &[&batch, &(rows as i64)],
        )
        .await?;
    let insert = transaction
        .prepare(
            "INSERT INTO clean.listings (batch_number, row_index, brokered_by, status, price, bed, bath,
                 acre_lot, street, city, state, zip_code, house_size, prev_sold_date, row_hash)
             VALUES ($1, $2, $3, 'for_sale', $4, $5, $6, $7, NULL, 'Town', $8, $9, $10, NULL, $11)",
        )
        .await?;
    let mut rng = SplitMix64::keyed(7, &[batch as u64]);
    for i in 0..rows {
        let state_index = rng.below(4) as usize;
        let level = [1.0, 0.6, 2.5, 1.4][state_index];
        let size = (800.0 + rng.next_f64() * 3000.0) * scale;
        let bed = 1 + rng.below(5) as i16;
        let price = (level * size * 150.0 * (1.0 + 0.1 * rng.normal())).max(10_000.0) * scale;
        transaction
            .execute(
                &insert,
                &[
                    &batch,
                    &(i as i32),
                    &(rng.below(500) as i64),
                    &price,
                    &bed,
                    &bed.min(3),
                    &(rng.next_f64() * scale),
                    &STATES[state_index],
                    &format!("{:05}", 10_000 + rng.below(80_000)),
                    &size,
                    &(rng.next_u64() as i64),
                ],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}
