//! Drift in served inputs (`GET /drift/predictions`, `prediction_input_drift{field}`), through
//! the real predictor binary: a real production model (train and promote on synthetic batches
//! priced in Texas, Ohio, California and Florida), then predictions whose house sizes are three
//! times larger and all in Alaska, with bedrooms, status and city as in training. Sizes and
//! states must drift; bedrooms, status and the city's prefix must not, and the gauges
//! `prediction_input_drifted{field}` carry the same verdicts.

use std::time::Duration;

use appraise_testkit::fixtures;
use serde_json::{Value, json};

#[tokio::test]
async fn served_inputs_shifted_on_purpose_drift_where_they_were_shifted() {
    let (db_url, db) = fixtures::fresh_database().await.unwrap();
    let (s3, objects) = fixtures::s3_server(vec![]).await.unwrap();
    let production = crate::support::seed_production_model(&db, &objects)
        .await
        .unwrap();
    let mut env = s3.env(fixtures::BUCKET);
    env.extend([
        ("DATABASE_URL".to_owned(), db_url),
        ("PREDICT_DRIFT_SAMPLE".to_owned(), "300".to_owned()),
        // Each request computes anew (the default reuses a report for 10 s).
        (
            "PREDICT_INPUT_DRIFT_REUSE_SECONDS".to_owned(),
            "0".to_owned(),
        ),
    ]);
    let predict = crate::support::start_predictor(&env).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", predict.url());

    // Before any prediction, nothing is compared and nothing drifts.
    let report: Value = crate::support::get_json(&client, url("/drift/predictions")).await;
    assert_eq!(report["production_version"], production.as_str());
    assert_eq!(report["current_rows"], 0);
    assert_eq!(report["drifted"], false, "{report}");

    // 400 predictions (the last 300 are compared): sizes tripled, every listing in Alaska.
    let listings: Vec<Value> = (0..400)
        .map(|i| {
            let bed = 1 + i % 5;
            json!({"bed": bed, "bath": bed.min(3), "acre_lot": (i % 100) as f64 / 100.0,
                   "house_size": 3.0 * (800.0 + (i * 7 % 3000) as f64), "state": "Alaska",
                   "status": "for_sale", "city": "Town", "zip_code": "99501"})
        })
        .collect();
    let mut status = 0;
    for _ in 0..600 {
        let response = client
            .post(url("/predict/batch"))
            .json(&json!({ "listings": listings }))
            .send()
            .await
            .unwrap();
        status = response.status().as_u16();
        if status == 200 {
            break;
        }
        // Not ready yet: the model loads in the background.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the predictor never priced the batch");
    // The inference log is written off the request path: wait until it holds them all.
    let mut logged = 0i64;
    for _ in 0..1_200 {
        logged = fixtures::query_value(&db, "SELECT count(*) FROM ops.inference_log").await;
        if logged >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        logged, 400,
        "the inference log never held the 400 predictions"
    );

    let report: Value = crate::support::get_json(&client, url("/drift/predictions")).await;
    assert_eq!(report["current_rows"], 300, "{report}");
    assert_eq!(report["drifted"], true, "{report}");
    let field = |name: &str| -> Value {
        report["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("no field {name}: {report}"))
            .clone()
    };
    for (name, test, drifted) in [
        ("house_size", "ks", true),
        ("state", "psi", true),
        ("bed", "ks", false),
        ("status", "psi", false),
        ("city_prefix", "psi", false),
    ] {
        let verdict = field(name);
        assert_eq!(verdict["test"], test, "{verdict}");
        assert_eq!(verdict["drifted"], drifted, "{verdict}");
    }
    assert!(field("house_size")["statistic"].as_f64().unwrap() > 0.5);
    assert!(field("state")["statistic"].as_f64().unwrap() > 1.0);

    // The gauges hold each field's statistic and verdict from that computation.
    let metrics = client
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge_of = |metric: &str, name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!("{metric}{{")) && l.contains(&format!("field=\"{name}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {metric} for {name}:\n{metrics}"))
    };
    let gauge = |name: &str| gauge_of("prediction_input_drift", name);
    assert_eq!(
        gauge("house_size"),
        field("house_size")["statistic"].as_f64().unwrap()
    );
    assert!(gauge("state") > 1.0);
    // The verdict is the report's: KS D alone does not decide.
    for name in appraise_predict::input_drift::fields() {
        let drifted = field(name)["drifted"].as_bool().unwrap();
        assert_eq!(
            gauge_of("prediction_input_drifted", name),
            if drifted { 1.0 } else { 0.0 },
            "{name}"
        );
    }
    assert_eq!(gauge_of("prediction_input_drifted", "house_size"), 1.0);
    assert_eq!(gauge_of("prediction_input_drifted", "bed"), 0.0);
}
