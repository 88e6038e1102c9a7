//! Announcements that must follow a commit: the transactional outbox.
//!
//! A stage announces its work by writing an object (`raw/…/manifest.json`,
//! `clean/…/manifest.json`), whose object-created event wakes the next stage. That object must
//! appear only after the rows it announces are committed, and must appear even if the stage
//! crashes right after committing. So the stage [`enqueue`]s the object inside its transaction
//! (a row in `ops.outbox`), and after the commit [`flush`]es every object not yet written. A
//! crash between the two is repaired by the next flush, from any stage. Writing an object
//! twice writes the same bytes, so concurrent flushes are harmless.
//!
//! Most keys are written once ([`enqueue`] keeps the first body). A pointer that moves, like
//! `production/current.json`, is queued with [`enqueue_replacing`]; a flush that finds the body
//! replaced while it was writing writes the newer body too, so the object ends as the last
//! committed body whatever the interleaving.

use anyhow::Context;
use bytes::Bytes;
use tokio_postgres::{GenericClient, Transaction};

use crate::{db::DbPool, objects::ObjectStore, runtime::StageError};

/// Records, in the caller's transaction, that `key` is to be written with this JSON body.
/// Enqueuing a key again keeps the first body.
pub async fn enqueue(
    client: &impl GenericClient,
    key: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<()> {
    queue(
        client,
        "INSERT INTO ops.outbox (key, body) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        key,
        body,
    )
    .await
}

/// Records, in the caller's transaction, that `key` is to be (re)written with this JSON body,
/// replacing any body queued or written before.
pub async fn enqueue_replacing(
    client: &impl GenericClient,
    key: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<()> {
    queue(
        client,
        "INSERT INTO ops.outbox (key, body) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE
         SET body = excluded.body, queued_at = clock_timestamp(), written_at = NULL",
        key,
        body,
    )
    .await
}

async fn queue(
    client: &impl GenericClient,
    statement: &str,
    key: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<()> {
    let body = serde_json::to_string_pretty(body)?;
    client
        .execute(statement, &[&key, &body])
        .await
        .with_context(|| format!("queueing {key} in ops.outbox"))?;
    Ok(())
}

/// Runs `work` in one transaction on a pooled connection, commits it, then [`flush`]es what
/// it queued: the shape of every stage that announces its work.
pub async fn commit_then_flush<T>(
    db: &DbPool,
    objects: &ObjectStore,
    work: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, StageError>,
) -> Result<T, StageError> {
    let mut client = db
        .get()
        .await
        .map_err(|e| StageError::Unavailable(format!("getting a database connection: {e}")))?;
    let transaction = tokio_postgres::Client::transaction(&mut client)
        .await
        .map_err(|e| StageError::Unavailable(format!("starting a transaction: {e}")))?;
    let outcome = work(&transaction).await?;
    transaction
        .commit()
        .await
        // With its source: a bare tokio_postgres error says only "db error".
        .map_err(|e| {
            StageError::Unavailable(format!("committing: {:#}", anyhow::Error::from(e)))
        })?;
    flush(&**client, objects).await?;
    Ok(outcome)
}

/// Writes every queued object not written yet, oldest first, and marks it written. Returns
/// the keys written.
pub async fn flush(
    client: &impl GenericClient,
    objects: &ObjectStore,
) -> anyhow::Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT key, body, queued_at FROM ops.outbox WHERE written_at IS NULL
             ORDER BY queued_at, key",
            &[],
        )
        .await
        .context("reading ops.outbox")?;
    let mut written = Vec::with_capacity(rows.len());
    for row in rows {
        let key: String = row.get(0);
        let mut body: String = row.get(1);
        let mut queued_at: time::OffsetDateTime = row.get(2);
        loop {
            objects
                .put(&key, Bytes::from(body.clone()), "application/json")
                .await?;
            let marked = client
                .execute(
                    "UPDATE ops.outbox SET written_at = now()
                     WHERE key = $1 AND queued_at = $2 AND written_at IS NULL",
                    &[&key, &queued_at],
                )
                .await?;
            if marked == 1 {
                break;
            }
            // Replaced (or written by another flush) meanwhile: make sure the object holds the
            // latest body, not the one this flush read.
            let latest = client
                .query_one(
                    "SELECT body, queued_at FROM ops.outbox WHERE key = $1",
                    &[&key],
                )
                .await?;
            if latest.get::<_, &str>(0) == body {
                break;
            }
            body = latest.get(0);
            queued_at = latest.get(1);
        }
        written.push(key);
    }
    Ok(written)
}
