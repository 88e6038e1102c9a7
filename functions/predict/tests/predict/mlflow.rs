//! A rollback through the predict binary (`POST /models/{version}/promote`, with the operator
//! token) moves MLflow's `champion` alias back, on a real `mlflow server` from the tools
//! virtualenv, read back by MLflow's own Python client (`testkit/src/mlflow_read_back.py`); the
//! models come from the real train and promote stages, mirroring to the same server.
//!
//! Without mlflow in the tools virtualenv the test says so and passes, except in CI (`CI=true`).

use std::time::Duration;

use appraise_core::db::DbPool;
use appraise_mlflow::{Mirror, MlflowSettings};
use appraise_testkit::{
    fixtures::{self, query_column, query_value},
    mlflow_server::{MlflowServer, mlflow_command},
};
use serde_json::Value;

const TOKEN: &str = "test-rollback-token";

/// The registered version whose tag `appraise.version` is `version`, as read back.
fn registered<'a>(mlflow: &'a Value, version: &str) -> &'a Value {
    mlflow["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["tags"]["appraise.version"] == version)
        .unwrap_or_else(|| panic!("{version} is not registered: {mlflow}"))
}

/// Waits until the queued work `key` is mirrored (the predictor drains in the background after
/// the rollback commits); its `last_error` if it never is.
async fn wait_mirrored(db: &DbPool, key: &str) {
    for _ in 0..600 {
        let mirrored: bool = db
            .get()
            .await
            .unwrap()
            .query_opt(
                "SELECT 1 FROM ops.mlflow_outbox WHERE work_key = $1 AND mirrored_at IS NOT NULL",
                &[&key],
            )
            .await
            .unwrap()
            .is_some();
        if mirrored {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows: Vec<Option<String>> = query_column(
        db,
        &format!("SELECT last_error FROM ops.mlflow_outbox WHERE work_key = '{key}'"),
    )
    .await;
    panic!("{key} was never mirrored: {rows:?}");
}

#[tokio::test]
async fn a_rollback_through_the_predictor_moves_the_champion_alias_in_mlflow() {
    if mlflow_command().is_none() {
        fixtures::skip_without_tool("no mlflow in target/tools-venv: run scripts/setup-tools.sh");
        return;
    }
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    let mlflow = MlflowServer::start_in_temp_dir().await.unwrap();
    let mirror = Mirror::new(
        MlflowSettings::for_server(&mlflow.url()).unwrap(),
        db.clone(),
        objects.clone(),
    )
    .unwrap();
    let production = crate::support::seed_mirrored_production_model(&db, &objects, Some(&mirror))
        .await
        .unwrap();
    let earlier: String = db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT candidate_version FROM ops.promotions
             WHERE decision = 'promoted' AND candidate_version <> $1 ORDER BY id LIMIT 1",
            &[&production],
        )
        .await
        .unwrap()
        .get(0);
    let before = mlflow.read_back("appraise", "appraise").unwrap();
    assert_eq!(before["champion"], production.as_str(), "{before}");

    let mut env = s3.env(fixtures::BUCKET);
    env.extend([
        ("DATABASE_URL".to_owned(), db_url),
        ("PREDICT_RELOAD_TOKEN".to_owned(), TOKEN.to_owned()),
        ("PREDICT_POLL_SECONDS".to_owned(), "0".to_owned()),
        ("MLFLOW_TRACKING_URI".to_owned(), mlflow.url()),
    ]);
    let predict = crate::support::start_predictor(&env).await;
    let client = reqwest::Client::new();
    let roll_back = |version: &str| {
        client
            .post(format!("{}/models/{version}/promote", predict.url()))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"reason": "the new model misprices lofts"}"#)
            .send()
    };

    let response = roll_back(&earlier).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let promotion_id = answer["promotion_id"].as_i64().unwrap();
    let key = format!("rollback-{promotion_id:06}");
    wait_mirrored(&db, &key).await;

    let after = mlflow.read_back("appraise", "appraise").unwrap();
    assert_eq!(after["champion"], earlier.as_str(), "{after}");
    let earlier_version = registered(&after, &earlier);
    assert_eq!(
        after["aliases"],
        serde_json::json!({ "champion": earlier_version["version"] }),
        "one alias, moved to the version put back"
    );
    let tags = &earlier_version["tags"];
    assert_eq!(
        tags["appraise.rollback_reason"],
        "the new model misprices lofts"
    );
    assert_eq!(
        tags["appraise.rollback_promotion_id"],
        promotion_id.to_string()
    );
    assert_eq!(tags["appraise.rollback_replaced"], production.as_str());
    // The version it replaced keeps its own decision tags and no rollback tag.
    let replaced = &registered(&after, &production)["tags"];
    assert_eq!(replaced["appraise.decision"], "promoted");
    assert!(
        replaced.get("appraise.rollback_reason").is_none(),
        "{replaced}"
    );

    // The same request again changes nothing: 409, no second queue row; and the work done
    // again (as after a crash that lost the queue's acknowledgement) leaves the same alias
    // and tags.
    assert_eq!(roll_back(&earlier).await.unwrap().status(), 409);
    db.get()
        .await
        .unwrap()
        .execute(
            "UPDATE ops.mlflow_outbox SET mirrored_at = NULL WHERE work_key = $1",
            &[&key],
        )
        .await
        .unwrap();
    let drained = mirror.drain_when_free().await;
    assert_eq!(
        (drained.mirrored, &drained.error, drained.pending),
        (1, &None, Some(0)),
        "{drained:?}"
    );
    let again = mlflow.read_back("appraise", "appraise").unwrap();
    assert_eq!(again["aliases"], after["aliases"]);
    assert_eq!(registered(&again, &earlier)["tags"], *tags);
    let rollbacks: i64 = query_value(
        &db,
        "SELECT count(*) FROM ops.mlflow_outbox WHERE work_key LIKE 'rollback-%'",
    )
    .await;
    assert_eq!(rollbacks, 1);

    // Rolled forward again: the alias follows, after the first rollback's work (queue order).
    let response = roll_back(&production).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let forward = format!("rollback-{:06}", answer["promotion_id"].as_i64().unwrap());
    wait_mirrored(&db, &forward).await;
    let last = mlflow.read_back("appraise", "appraise").unwrap();
    assert_eq!(last["champion"], production.as_str(), "{last}");
    let keys: Vec<String> = query_column(
        &db,
        "SELECT work_key FROM ops.mlflow_outbox WHERE work_key LIKE 'rollback-%' ORDER BY id",
    )
    .await;
    assert_eq!(keys, [key, forward]);
}
