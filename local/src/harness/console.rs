//! What the main job prints: a line per stage per batch, read from the stage's answer or from
//! the database, and the summary table.

use std::time::Duration;

use anyhow::Context;
use appraise_core::reports::{DriftSummary, PromoteReport, TrainReport};
use appraise_testkit::s3_server::Delivery;
use indicatif::ProgressBar;
use serde_json::Value;

/// One batch's line in the summary, read from the database.
pub(crate) struct BatchLine {
    batch: i64,
    received: i64,
    sampled: i64,
    flagged: i64,
    stored: i64,
    kept: i64,
    /// Seconds the harness spent on the batch (ingest to promote), when it saw it arrive.
    seconds: Option<f64>,
}

/// Every batch the database holds, with what ingest and process recorded of it, and the
/// seconds the harness saw it take.
pub(crate) async fn summary_lines(
    db: &appraise_core::db::DbPool,
    seconds: &std::collections::HashMap<i64, f64>,
) -> anyhow::Result<Vec<BatchLine>> {
    let client = db
        .get()
        .await
        .context("reading the summary from the database")?;
    let rows = client
        .query(
            "SELECT b.batch_number, b.rows_received, b.rows_sampled, b.rows_flagged,
                    (SELECT count(*) FROM raw.listings l WHERE l.batch_number = b.batch_number),
                    coalesce(c.rows_kept, 0)
             FROM ops.batches b LEFT JOIN ops.clean_batches c USING (batch_number)
             ORDER BY b.batch_number",
            &[],
        )
        .await
        .context("reading the summary from the database")?;
    Ok(rows
        .iter()
        .map(|row| {
            let batch = i64::from(row.get::<_, i32>(0));
            BatchLine {
                batch,
                received: row.get::<_, i32>(1).into(),
                sampled: row.get::<_, i32>(2).into(),
                flagged: row.get::<_, i32>(3).into(),
                stored: row.get(4),
                kept: row.get::<_, i32>(5).into(),
                seconds: seconds.get(&batch).copied(),
            }
        })
        .collect())
}

/// Process's line for `batch`, from its report in `ops.clean_batches`.
pub(crate) async fn describe_cleaning(
    db: &appraise_core::db::DbPool,
    batch: i64,
) -> anyhow::Result<String> {
    let client = db.get().await?;
    let row = client
        .query_opt(
            "SELECT rows_in, rows_kept, dropped FROM ops.clean_batches WHERE batch_number = $1",
            &[&(batch as i32)],
        )
        .await?;
    Ok(match row {
        Some(row) => format!(
            "process  batch {batch:>3}  kept {:>9} of {:>9}  dropped: {}",
            thousands(row.get::<_, i32>(1).into()),
            thousands(row.get::<_, i32>(0).into()),
            describe_drops(&row.get::<_, Value>(2)),
        ),
        None => format!("process  batch {batch:>3}  not processed"),
    })
}

/// The training that batch `batch`'s decision started, if it decided to train.
pub(crate) async fn training_of(
    db: &appraise_core::db::DbPool,
    batch: i64,
) -> anyhow::Result<Option<i64>> {
    let client = db.get().await?;
    Ok(client
        .query_opt(
            "SELECT id FROM ops.trainings WHERE batch_number = $1 AND decision = 'train'",
            &[&(batch as i32)],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Promote's decision with both scores.
pub(crate) fn describe_promotion(batch: i64, report: &PromoteReport) -> String {
    match report {
        PromoteReport::Decided {
            promoted,
            candidate,
            reason,
            ..
        } => format!(
            "promote  batch {batch:>3}  {} {}: {reason}",
            if *promoted { "promoted" } else { "rejected" },
            candidate.version,
        ),
        PromoteReport::Duplicate { training_id, .. } => {
            format!("promote  batch {batch:>3}  training {training_id} was decided before")
        }
        PromoteReport::Ignored { key, reason } => {
            format!("promote  batch {batch:>3}  ignored {key}: {reason}")
        }
    }
}

/// Waits for the predictor to serve the production model, asks it for one price, and says
/// where it is.
pub(crate) async fn show_predictor(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let mut ready = Value::Null;
    for _ in 0..200 {
        let response = client.get(format!("{url}/ready")).send().await?;
        if response.status().is_success() {
            ready = response.json().await?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if ready.is_null() {
        println!("predict: no model in production (nothing was promoted)");
        return Ok(());
    }
    let listing = serde_json::json!({
        "brokered_by": 10481, "status": "for_sale", "bed": 3, "bath": 2, "acre_lot": 0.25,
        "city": "Springfield", "state": "Massachusetts", "zip_code": "01103",
        "house_size": 1800, "prev_sold_date": "2015-06-01"
    });
    let answer: Value = client
        .post(format!("{url}/predict"))
        .json(&listing)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "production model: {} ({}, test RMSE {})",
        ready["model_version"].as_str().unwrap_or("?"),
        ready["algorithm"].as_str().unwrap_or("?"),
        thousands(ready["model_rmse"].as_f64().unwrap_or(0.0) as i64)
    );
    println!(
        "a 3 bed, 2 bath, 1,800 sq ft house in Springfield, MA: ${}",
        thousands(answer["predicted_price"].as_f64().unwrap_or(0.0) as i64)
    );
    println!("predictor: {url}/ (web page), {url}/predict, {url}/metrics");
    Ok(())
}

/// Waits (up to a minute) for train and promote to finish mirroring to MLflow, then says what
/// it holds and where.
pub(crate) async fn show_mlflow(db: &appraise_core::db::DbPool, url: &str) -> anyhow::Result<()> {
    let client = db.get().await?;
    let pending_sql = "SELECT count(*) FROM ops.mlflow_outbox WHERE mirrored_at IS NULL";
    let mut pending: i64 = client.query_one(pending_sql, &[]).await?.get(0);
    for _ in 0..120 {
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        pending = client.query_one(pending_sql, &[]).await?.get(0);
    }
    let trainings: i64 = client
        .query_one(
            "SELECT count(*) FROM ops.mlflow_outbox
             WHERE mirrored_at IS NOT NULL AND work_key LIKE 'training-%'",
            &[],
        )
        .await?
        .get(0);
    let waiting = if pending > 0 {
        format!(", {pending} still waiting: see the train and promote logs")
    } else {
        String::new()
    };
    println!(
        "mlflow: {url} ({trainings} {} mirrored to experiment and model `appraise`{waiting})",
        plural(trainings as usize, "training", "trainings")
    );
    Ok(())
}

/// Each batch's state in each stage, as the predictor's `GET /runs` answers it (the page's
/// grid), oldest batch first, one line per batch.
pub(crate) async fn show_runs(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Runs {
        batches: Vec<appraise_core::runs::BatchRuns>,
    }
    let runs: Runs = client
        .get(format!("{url}/runs?limit=1000"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("runs ({url}/runs):");
    for batch in runs.batches.iter().rev() {
        let stages: Vec<String> = batch
            .stages
            .iter()
            .map(|run| {
                let state = serde_json::to_value(run.state).unwrap_or_default();
                format!("{} {}", run.stage.as_str(), state.as_str().unwrap_or("?"))
            })
            .collect();
        println!(
            "runs     batch {:>3}  {}",
            batch.batch_number,
            stages.join(" · ")
        );
    }
    Ok(())
}

/// The predictor's test of served inputs (`GET /drift/predictions`) after the run's
/// predictions, one line: how many were compared, and which fields drifted.
pub(crate) async fn show_input_drift(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let report: Value = client
        .get(format!("{url}/drift/predictions"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let Some(version) = report["production_version"].as_str() else {
        println!("served inputs: no production model to compare with");
        return Ok(());
    };
    let fields = report["fields"].as_array().cloned().unwrap_or_default();
    let drifted: Vec<&str> = fields
        .iter()
        .filter(|f| f["drifted"] == true)
        .filter_map(|f| f["field"].as_str())
        .collect();
    println!(
        "served inputs: {} predictions against a sample of {} training rows of {version}, {} fields tested; drifted: {}",
        report["current_rows"],
        report["reference_rows"],
        fields.len(),
        if drifted.is_empty() {
            "none".to_owned()
        } else {
            drifted.join(", ")
        }
    );
    Ok(())
}

/// The drift verdict, the decision and each model's test metrics, one line each.
pub(crate) fn describe_training(batch: i64, report: &TrainReport) -> Vec<String> {
    let drift = match report {
        TrainReport::Trained { drift, .. } | TrainReport::Skipped { drift, .. } => drift.as_ref(),
        TrainReport::Duplicate { .. } | TrainReport::Ignored { .. } => None,
    };
    let mut lines = vec![match drift {
        None => {
            format!("drift    batch {batch:>3}  not tested: no production model to compare with")
        }
        Some(DriftSummary {
            worst_feature: None,
            ..
        }) => format!("drift    batch {batch:>3}  not tested: no clean rows to compare"),
        Some(DriftSummary {
            drifted,
            worst_feature: Some(feature),
            worst_statistic,
        }) => format!(
            "drift    batch {batch:>3}  {}  (largest: {feature} D={:.3})",
            if *drifted { "DRIFT" } else { "no drift" },
            worst_statistic.unwrap_or(0.0)
        ),
    }];
    match report {
        TrainReport::Trained {
            training_id,
            reason,
            candidates,
            ..
        } => {
            lines.push(format!(
                "train    batch {batch:>3}  trained (training {training_id}): {reason}"
            ));
            for candidate in candidates {
                let test = &candidate.test;
                lines.push(format!(
                    "model    {:<22} test rmse {:>9}  mae {:>9}  r2 {:.3}  mape {:.3}  fit {:.1} s",
                    candidate.version,
                    thousands(test.rmse as i64),
                    thousands(test.mae as i64),
                    test.r2,
                    test.mape,
                    candidate.fit_seconds,
                ));
            }
        }
        TrainReport::Skipped { reason, .. } => {
            lines.push(format!("train    batch {batch:>3}  skipped: {reason}"))
        }
        TrainReport::Duplicate { .. } => {
            lines.push(format!("train    batch {batch:>3}  decided before"))
        }
        TrainReport::Ignored { key, reason } => lines.push(format!(
            "train    batch {batch:>3}  ignored {key}: {reason}"
        )),
    }
    lines
}

/// `price_out_of_range 1,234 · missing_bed 567`: the rules that dropped rows, most first.
pub(crate) fn describe_drops(dropped: &Value) -> String {
    let mut counts: Vec<(&str, i64)> = dropped
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(rule, count)| Some((rule.as_str(), count.as_i64()?)))
                .filter(|(_, count)| *count > 0)
                .collect()
        })
        .unwrap_or_default();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if counts.is_empty() {
        return "nothing".to_owned();
    }
    counts
        .iter()
        .map(|(rule, count)| format!("{rule} {}", thousands(*count)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Prints a line above the spinner (and plainly when output is not a terminal, where
/// indicatif hides the spinner and everything it prints).
pub(crate) fn say(spinner: &ProgressBar, line: impl AsRef<str>) {
    spinner.suspend(|| println!("{}", line.as_ref()));
}

pub(crate) fn report_delivery(spinner: &ProgressBar, delivery: &Delivery) {
    let line = match &delivery.target {
        None => format!("event    s3:ObjectCreated:Put {}", delivery.key),
        Some(target) => format!(
            "event    s3:ObjectCreated:Put {} -> {target} (HTTP {})",
            delivery.key,
            delivery
                .status
                .map_or("unreachable".to_owned(), |s| s.to_string())
        ),
    };
    say(spinner, line);
}

pub(crate) fn print_summary(lines: &[BatchLine], elapsed: Duration) {
    println!();
    println!("batch  received    sampled    flagged     stored       kept   seconds");
    for line in lines {
        println!(
            "{:>5} {:>9} {:>10} {:>10} {:>10} {:>10} {:>9}",
            line.batch,
            thousands(line.received),
            thousands(line.sampled),
            thousands(line.flagged),
            thousands(line.stored),
            thousands(line.kept),
            line.seconds
                .map_or("-".to_owned(), |seconds| format!("{seconds:.1}"))
        );
    }
    let total = |f: fn(&BatchLine) -> i64| lines.iter().map(f).sum::<i64>();
    println!(
        "total {:>9} {:>10} {:>10} {:>10} {:>10} {:>9.1}",
        thousands(total(|l| l.received)),
        thousands(total(|l| l.sampled)),
        thousands(total(|l| l.flagged)),
        thousands(total(|l| l.stored)),
        thousands(total(|l| l.kept)),
        elapsed.as_secs_f64()
    );
}

/// `one` when `count` is 1, else `many`.
pub(crate) fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}

pub(crate) fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if value < 0 { format!("-{out}") } else { out }
}
