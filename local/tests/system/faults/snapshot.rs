//! What a run leaves (its rows, announcements and objects), and its comparison with the
//! reference run's.

use std::collections::{BTreeMap, BTreeSet};

use super::Run;

impl Run {
    /// What the run left, for the comparison with the reference.
    pub(super) async fn snapshot(&self) -> Snapshot {
        let client = self.db.get().await.unwrap();
        let set = |rows: Vec<tokio_postgres::Row>| -> BTreeSet<String> {
            rows.iter().map(|r| r.get::<_, String>(0)).collect()
        };
        let query = |sql: &'static str| {
            let client = &client;
            async move { set(client.query(sql, &[]).await.unwrap()) }
        };
        let mut rows = BTreeMap::new();
        rows.insert(
            "raw.listings",
            query("SELECT batch_number || '/' || row_index FROM raw.listings").await,
        );
        rows.insert(
            "clean.listings",
            query("SELECT batch_number || '/' || row_index FROM clean.listings").await,
        );
        rows.insert(
            "ops.trainings",
            query("SELECT batch_number || ':' || decision || ':' || id FROM ops.trainings").await,
        );
        rows.insert(
            "ops.model_versions",
            query("SELECT version FROM ops.model_versions").await,
        );
        rows.insert(
            "ops.promotions",
            query("SELECT training_id || ':' || decision FROM ops.promotions").await,
        );
        rows.insert(
            "ops.production",
            query("SELECT version FROM ops.production").await,
        );
        // Each batch's run in each stage ends as in the reference (attempts aside: faults add
        // some).
        rows.insert(
            "ops.stage_runs",
            query("SELECT batch_number || ':' || stage || ':' || state FROM ops.stage_runs").await,
        );
        let unannounced: i64 = client
            .query_one(
                "SELECT count(*) FROM ops.outbox WHERE written_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let twice_kept: i64 = client
            .query_one(
                "SELECT count(*) - count(DISTINCT row_hash) FROM clean.listings",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        // Objects no row accounts for.
        let versions = &rows["ops.model_versions"];
        let batches: BTreeSet<String> = query("SELECT manifest_key FROM ops.batches").await;
        let cleaned: BTreeSet<String> = query("SELECT manifest_key FROM ops.clean_batches").await;
        let mut orphans = Vec::new();
        for key in self.objects.list("models/").await.unwrap() {
            let version = key.split('/').nth(1).unwrap_or_default();
            if !versions.contains(version) {
                orphans.push(key);
            }
        }
        for key in self.objects.list("raw/").await.unwrap() {
            if key.ends_with("manifest.json") && !batches.contains(&key) {
                orphans.push(key);
            }
        }
        for key in self.objects.list("clean/").await.unwrap() {
            if !cleaned.contains(&key) {
                orphans.push(key);
            }
        }
        Snapshot {
            rows,
            unannounced: unannounced as usize,
            twice_kept: twice_kept as usize,
            orphans,
        }
    }
}

/// The database rows and objects a run leaves.
pub(super) struct Snapshot {
    pub(super) rows: BTreeMap<&'static str, BTreeSet<String>>,
    unannounced: usize,
    twice_kept: usize,
    pub(super) orphans: Vec<String>,
}

impl Snapshot {
    /// Rows of `reference` this snapshot lacks, and rows it has that `reference` lacks.
    pub(super) fn compare(&self, reference: &Snapshot) -> (usize, usize, Vec<String>) {
        let mut lost = self.unannounced;
        let mut extra = self.twice_kept;
        let mut differences = Vec::new();
        for (table, expected) in &reference.rows {
            let actual = &self.rows[table];
            let missing: Vec<_> = expected.difference(actual).collect();
            let surplus: Vec<_> = actual.difference(expected).collect();
            lost += missing.len();
            extra += surplus.len();
            if !missing.is_empty() || !surplus.is_empty() {
                differences.push(format!(
                    "{table}: missing {:?}, extra {:?}",
                    &missing[..missing.len().min(5)],
                    &surplus[..surplus.len().min(5)]
                ));
            }
        }
        (lost, extra, differences)
    }
}
