//! The production pointer's row in PostgreSQL (`ops.production`): which model version is
//! served, since when, and by which promotion. Promote moves it when it promotes a candidate, the
//! predictor's rollback when it puts an earlier model back; each then announces the move as
//! `production/current.json` ([`crate::model::ProductionPointer`]) through the outbox, in the
//! same transaction.

use tokio_postgres::{Error, Transaction};

/// Points `ops.production` at `version`, moved there by promotion `promotion_id`; returns when.
pub async fn point_at(
    transaction: &Transaction<'_>,
    version: &str,
    promotion_id: i64,
) -> Result<time::OffsetDateTime, Error> {
    Ok(transaction
        .query_one(
            "INSERT INTO ops.production (singleton, version, promoted_at, promotion_id)
             VALUES (true, $1, now(), $2)
             ON CONFLICT (singleton) DO UPDATE
             SET version = excluded.version, promoted_at = excluded.promoted_at,
                 promotion_id = excluded.promotion_id
             RETURNING promoted_at",
            &[&version, &promotion_id],
        )
        .await?
        .get(0))
}
