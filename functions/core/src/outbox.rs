//! Announcements that must follow a commit: the transactional outbox.
//!
//! A stage announces its work by writing an object (`raw/…/manifest.json`,
//! `clean/…/manifest.json`), whose object-created event wakes the next stage. That object must
//! appear only after the rows it announces are committed, and must appear even if the stage
//! crashes right after committing. So the stage [`enqueue`]s the object inside its transaction
//! (a row in `ops.outbox`), and after the commit [`flush`]es every object not yet written. A
//! crash between the two is repaired by the next flush, from any stage. Writing an object
//! twice writes the same bytes, so concurrent flushes are harmless.

use anyhow::Context;
use bytes::Bytes;
use tokio_postgres::GenericClient;

use crate::objects::ObjectStore;

/// Records, in the caller's transaction, that `key` is to be written with this JSON body.
/// Enqueuing a key again keeps the first body.
pub async fn enqueue(
    client: &impl GenericClient,
    key: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<()> {
    let body = serde_json::to_string_pretty(body)?;
    client
        .execute(
            "INSERT INTO ops.outbox (key, body) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &body],
        )
        .await
        .with_context(|| format!("queueing {key} in ops.outbox"))?;
    Ok(())
}

/// Writes every queued object not written yet, oldest first, and marks it written. Returns
/// the keys written.
pub async fn flush(
    client: &impl GenericClient,
    objects: &ObjectStore,
) -> anyhow::Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT key, body FROM ops.outbox WHERE written_at IS NULL ORDER BY queued_at, key",
            &[],
        )
        .await
        .context("reading ops.outbox")?;
    let mut written = Vec::with_capacity(rows.len());
    for row in rows {
        let key: String = row.get(0);
        let body: String = row.get(1);
        objects
            .put(&key, Bytes::from(body), "application/json")
            .await?;
        client
            .execute(
                "UPDATE ops.outbox SET written_at = now() WHERE key = $1 AND written_at IS NULL",
                &[&key],
            )
            .await?;
        written.push(key);
    }
    Ok(written)
}
