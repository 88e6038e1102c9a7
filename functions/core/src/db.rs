//! PostgreSQL: the connection pool and the embedded schema migrations.
//!
//! One database holds every schema (`raw`, `ops`, and those later stages add). Migrations are
//! SQL files compiled into every binary and applied at start, in order, each once, under an
//! advisory lock so that many replicas starting together do not race. A pooled connection that
//! the server dropped (a restart) is replaced on next use, so a database restart costs the
//! deliveries in flight a retry, nothing more.
//!
//! The connection string comes from `DATABASE_URL`, or from Secrets Manager or SSM through
//! [`crate::secrets`] (an RDS secret's JSON is turned into a URL); its TLS settings (`sslmode`,
//! `sslrootcert`, libpq's names and meanings) are parsed in [`connection`], and the sessions are
//! encrypted by rustls ([`tls`]).
//!
//! Bulk writes use binary `COPY`, whose statement names the columns and whose writer needs their
//! types in the same order: a [`CopyTable`] states each column once, with its type, and gives
//! both. Bulk reads stream: [`for_each_row`] hands rows over as they arrive.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::Type;

use crate::{config, secrets};

pub mod connection;
pub mod tls;

pub use connection::{ConnectionSettings, RootCertificates, SslMode, TlsDefaults};

pub use deadpool_postgres::{Object as PooledClient, Pool as DbPool};

/// Advisory-lock keys, one per mutual exclusion the project needs. Kept together so no two
/// uses ever pick the same number.
pub mod locks {
    /// Held while migrations run.
    pub const MIGRATIONS: i64 = 0x6170_7072_0001;
    /// Held by the one ingest that is talking to the batch API: its cursor is global.
    pub const INGEST: i64 = 0x6170_7072_0002;
    /// Held while one batch is processed (two-key form: this class, the batch number).
    pub const PROCESS_CLASS: i32 = 0x7072_6f63;
    /// Held while train decides and trains: trainings happen one at a time.
    pub const TRAIN: i64 = 0x6170_7072_0003;
    /// Held while promote decides: the production pointer moves one decision at a time.
    pub const PROMOTE: i64 = 0x6170_7072_0004;
    /// Held (tried, never waited for) while one process drains the MLflow queue.
    pub const MLFLOW: i64 = 0x6170_7072_0005;
}

/// A table (or temporary table) written with binary `COPY`: its columns in the order rows are
/// written, each with its PostgreSQL type.
#[derive(Debug, Clone, Copy)]
pub struct CopyTable {
    /// The table's name, schema-qualified where it has one (`raw.listings`).
    pub table: &'static str,
    /// `(column, type)` in the order of the values of each row.
    pub columns: &'static [(&'static str, Type)],
}

impl CopyTable {
    /// `COPY table (column, …) FROM STDIN (FORMAT binary)`.
    pub fn statement(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            self.table,
            names.join(", ")
        )
    }

    /// The column types, in order, for a `BinaryCopyInWriter`.
    pub fn types(&self) -> Vec<Type> {
        self.columns.iter().map(|(_, ty)| ty.clone()).collect()
    }
}

/// The migrations, in order. A migration is never edited once released: add a new one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "foundation: raw listings, batches, schedule ticks",
        include_str!("../migrations/0001_foundation.sql"),
    ),
    (
        2,
        "clean listings and cleaning reports",
        include_str!("../migrations/0002_clean.sql"),
    ),
    (
        3,
        "drift reports, trainings, model versions, production pointer",
        include_str!("../migrations/0003_train.sql"),
    ),
    (
        4,
        "promotions, split seeds, the inference log",
        include_str!("../migrations/0004_promote.sql"),
    ),
    (
        5,
        "a training's id is its clean batch's number",
        include_str!("../migrations/0005_training_ids.sql"),
    ),
    (
        6,
        "dead letters: events Knative could not deliver",
        include_str!("../migrations/0006_dead_letters.sql"),
    ),
    (
        7,
        "explanations, lineage and rollbacks: global importance, prediction ids, promotion kinds",
        include_str!("../migrations/0007_explanations_lineage_rollback.sql"),
    ),
    (
        8,
        "the MLflow queue: what train and promote still have to mirror",
        include_str!("../migrations/0008_mlflow_outbox.sql"),
    ),
    (
        9,
        "stage runs: each batch's state in each stage",
        include_str!("../migrations/0009_stage_runs.sql"),
    ),
];

/// Runs `query` and hands each row to `each` as it arrives; returns how many there were. For
/// reads of whole batches: collecting the driver's rows first (`query`) would hold every row
/// twice, as the driver's and as ours (on the dataset's 2.2M rows process peaked at 750 MB that
/// way, 123 MB streaming; bench/README.md).
pub async fn for_each_row(
    client: &impl tokio_postgres::GenericClient,
    query: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    mut each: impl FnMut(tokio_postgres::Row),
) -> Result<u64, tokio_postgres::Error> {
    use futures_util::TryStreamExt;

    let rows = client.query_raw(query, params.iter().copied()).await?;
    let mut rows = std::pin::pin!(rows);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        each(row);
        count += 1;
    }
    Ok(count)
}

/// Builds a pool from `DATABASE_URL` (a `postgres://` URL or a libpq key=value string; or
/// `DATABASE_URL_SECRET_ID` / `DATABASE_URL_SSM_PARAMETER`), with `DATABASE_SSLMODE` and
/// `DATABASE_CA_BUNDLE` as TLS defaults and `DATABASE_POOL_SIZE`.
pub async fn pool_from_env() -> anyhow::Result<Pool> {
    let url = database_url_from_env().await?;
    let size: usize = config::optional("DATABASE_POOL_SIZE", 8)?;
    let settings = ConnectionSettings::parse(&url, &TlsDefaults::from_env()?)?;
    pool_with(&settings, size)
}

/// The connection string, from wherever the environment says (see [`crate::secrets`]). A
/// secret whose value is JSON is taken for an RDS secret and turned into a URL.
pub async fn database_url_from_env() -> anyhow::Result<String> {
    let secret = secrets::required("DATABASE_URL", "the PostgreSQL connection string").await?;
    if secret.source != secrets::SecretSource::Environment
        && secret.value().trim_start().starts_with('{')
    {
        return Ok(connection::url_from_rds_secret(
            secret.value(),
            &secret.variable,
        )?);
    }
    Ok(secret.into_value())
}

/// Builds a pool from a connection string alone (its `sslmode`, default `prefer`; no
/// environment defaults); connections are opened lazily, on first use.
pub fn pool(url: &str, size: usize) -> anyhow::Result<Pool> {
    pool_with(
        &ConnectionSettings::parse(url, &TlsDefaults::default())?,
        size,
    )
}

/// Builds a pool from parsed settings, reading the CA bundle they name now, so a bad one stops
/// the start rather than the first query.
pub fn pool_with(settings: &ConnectionSettings, size: usize) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        settings.postgres.clone(),
        settings.tls_connector()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .context("building the PostgreSQL pool")
}

/// Connects (retrying for up to `patience` while the server starts) and applies migrations.
pub async fn connect_and_migrate(pool: &Pool, patience: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut client = loop {
        match pool.get().await {
            Ok(client) => break client,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %format!("{:#}", anyhow::Error::new(error)), "PostgreSQL not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context("cannot connect to PostgreSQL"));
            }
        }
    };
    migrate(&mut client).await
}

/// Applies every migration not applied yet, each in its own transaction.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&locks::MIGRATIONS])
        .await
        .context("taking the migration lock")?;
    let result = apply_pending(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&locks::MIGRATIONS])
        .await
        .context("releasing the migration lock")?;
    result
}

async fn apply_pending(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS ops;
             CREATE TABLE IF NOT EXISTS ops.schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .context("creating ops.schema_migrations")?;
    for &(version, name, sql) in MIGRATIONS {
        let transaction = client.transaction().await?;
        let applied = transaction
            .query_opt(
                "SELECT 1 FROM ops.schema_migrations WHERE version = $1",
                &[&version],
            )
            .await?
            .is_some();
        if applied {
            continue;
        }
        transaction
            .batch_execute(sql)
            .await
            .with_context(|| format!("applying migration {version} ({name})"))?;
        transaction
            .execute(
                "INSERT INTO ops.schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(version, name, "migration applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_table_names_each_column_once_with_its_type() {
        const TABLE: CopyTable = CopyTable {
            table: "ops.example",
            columns: &[("id", Type::INT4), ("name", Type::TEXT), ("at", Type::DATE)],
        };
        assert_eq!(
            TABLE.statement(),
            "COPY ops.example (id, name, at) FROM STDIN (FORMAT binary)"
        );
        assert_eq!(TABLE.types(), [Type::INT4, Type::TEXT, Type::DATE]);
    }
}
