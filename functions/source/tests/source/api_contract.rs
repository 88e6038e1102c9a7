//! The batch API contract (DESIGN.md §5), tested over real HTTP against the router served
//! in-process on a random port.

use std::{collections::BTreeSet, num::NonZeroUsize, path::PathBuf};

use appraise_core::listing::{FIELDS, parse_api_record, parse_date};
use appraise_source::{
    Dataset, SourceState,
    api::EXHAUSTED_DETAIL,
    csv_source::CsvListings,
    generator::SyntheticListings,
    plan::{BatchPlan, Scale},
    router,
};
use serde_json::{Value, value::RawValue};

const SCALE: f64 = 0.01;

fn synthetic(seed: u64) -> Dataset {
    let scale = Scale::new(SCALE).unwrap();
    Dataset::Synthetic(SyntheticListings::new(seed, &BatchPlan::course(), scale).unwrap())
}

/// Serves `dataset` on 127.0.0.1 at a free port and returns the base URL.
async fn serve(dataset: Dataset) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(SourceState::new(dataset)))
            .await
            .unwrap()
    });
    format!("http://{address}")
}

struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

async fn get(url: String) -> Reply {
    let response = reqwest::get(&url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.bytes().await.unwrap().to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

fn planned_rows() -> Vec<u64> {
    let scale = Scale::new(SCALE).unwrap();
    BatchPlan::course()
        .batches()
        .iter()
        .map(|batch| scale.apply(batch.rows))
        .collect()
}

#[tokio::test]
async fn a_batch_has_the_course_fields_and_json_types() {
    let base = serve(synthetic(42)).await;
    let reply = get(format!("{base}/data?group_number=1")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    let body = reply.json();
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["group_number", "day", "batch_number", "data"])
    );
    assert_eq!(body["group_number"], 1);
    assert!(
        body["group_number"].is_i64(),
        "group_number is echoed as an integer"
    );
    assert_eq!(body["day"], Value::Null);
    assert_eq!(
        body["batch_number"], 0,
        "the first batch is number 0, as the course API's"
    );

    let records = body["data"].as_array().unwrap();
    assert_eq!(records.len() as u64, planned_rows()[0]);
    let numeric = [
        "brokered_by",
        "price",
        "bed",
        "bath",
        "acre_lot",
        "street",
        "zip_code",
        "house_size",
    ];
    let textual = ["status", "city", "state", "prev_sold_date"];
    let mut nulls = 0;
    for record in records {
        let fields: BTreeSet<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, BTreeSet::from(FIELDS));
        for field in numeric {
            let value = &record[field];
            // Floats on the wire, ids and zip codes included: 601.0, not 601.
            assert!(value.is_null() || value.is_f64(), "{field} = {value}");
            nulls += usize::from(value.is_null());
        }
        for field in textual {
            assert!(
                record[field].is_null() || record[field].is_string(),
                "{field} = {}",
                record[field]
            );
        }
        if let Some(date) = record["prev_sold_date"].as_str() {
            assert!(parse_date(date).is_some() && date.len() == 10, "{date}");
        }
    }
    assert!(nulls > 0, "the data has nulls, like the real file");

    // The wire rows are the generator's rows, field for field.
    let generator =
        SyntheticListings::new(42, &BatchPlan::course(), Scale::new(SCALE).unwrap()).unwrap();
    let raw: Box<RawValue> = serde_json::from_slice(&reply.body).unwrap();
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        data: Vec<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_str(raw.get()).unwrap();
    for (row, record) in envelope.data.iter().enumerate() {
        let parsed = parse_api_record(record);
        assert_eq!(parsed.problems, vec![], "row {row}");
        assert_eq!(
            parsed.listing,
            generator.batch(0).unwrap().listing(row as u64),
            "row {row}"
        );
    }
}

#[tokio::test]
async fn batches_follow_the_plan_then_end_in_spanish_until_restarted() {
    let base = serve(synthetic(42)).await;
    let mut first_body = Vec::new();
    for (index, rows) in planned_rows().into_iter().enumerate() {
        let reply = get(format!("{base}/data?group_number=4")).await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(body["batch_number"], index as u64);
        assert_eq!(
            body["data"].as_array().unwrap().len() as u64,
            rows,
            "batch {index}"
        );
        if index == 0 {
            first_body = reply.body;
        }
    }
    for _ in 0..2 {
        let reply = get(format!("{base}/data?group_number=4")).await;
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.json(),
            serde_json::json!({ "detail": EXHAUSTED_DETAIL })
        );
        assert_eq!(
            reply.json()["detail"],
            "Ya se recolectó toda la información minima necesaria"
        );
    }

    let reply = get(format!("{base}/restart_data_generation?group_number=4")).await;
    assert_eq!(
        (reply.status, reply.json()),
        (200, serde_json::json!({ "ok": true }))
    );
    let again = get(format!("{base}/data?group_number=4")).await;
    assert_eq!(again.json()["batch_number"], 0);
    assert!(
        again.body == first_body,
        "a restarted sequence repeats itself byte for byte"
    );
}

#[tokio::test]
async fn two_fresh_servers_serve_identical_bytes() {
    let (one, two, other_seed) = (
        serve(synthetic(42)).await,
        serve(synthetic(42)).await,
        serve(synthetic(7)).await,
    );
    for _ in 0..2 {
        let a = get(format!("{one}/data?group_number=9")).await;
        let b = get(format!("{two}/data?group_number=9")).await;
        let c = get(format!("{other_seed}/data?group_number=9")).await;
        assert_eq!(a.status, 200);
        assert!(a.body == b.body, "same seed, same bytes");
        assert!(a.body != c.body, "another seed, other rows");
    }
}

#[tokio::test]
async fn each_group_and_day_has_its_own_cursor() {
    let base = serve(synthetic(42)).await;
    let batch_number = |reply: Reply| reply.json()["batch_number"].as_u64().unwrap();
    assert_eq!(
        batch_number(get(format!("{base}/data?group_number=1")).await),
        0
    );
    assert_eq!(
        batch_number(get(format!("{base}/data?group_number=1")).await),
        1
    );

    let tuesday = get(format!("{base}/data?group_number=1&day=Tuesday"))
        .await
        .json();
    assert_eq!(
        (tuesday["batch_number"].as_u64(), tuesday["day"].as_str()),
        (Some(0), Some("Tuesday"))
    );
    assert_eq!(
        batch_number(get(format!("{base}/data?group_number=2")).await),
        0
    );

    // Restarting Tuesday's cursor leaves the day-less cursor of the same group alone.
    get(format!(
        "{base}/restart_data_generation?group_number=1&day=Tuesday"
    ))
    .await;
    assert_eq!(
        batch_number(get(format!("{base}/data?group_number=1&day=Tuesday")).await),
        0
    );
    assert_eq!(
        batch_number(get(format!("{base}/data?group_number=1")).await),
        2
    );

    // A day needing JSON escapes is echoed intact.
    let odd = get(format!(
        "{base}/data?group_number=1&day=%22Mi%C3%A9rcoles%22"
    ))
    .await
    .json();
    assert_eq!(odd["day"], "\"Miércoles\"");
}

#[tokio::test]
async fn health_and_malformed_queries_answer_like_fastapi() {
    let base = serve(synthetic(42)).await;
    let health = get(format!("{base}/health")).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    for path in ["data", "restart_data_generation"] {
        let missing = get(format!("{base}/{path}")).await;
        assert_eq!(missing.status, 422, "{path}");
        let detail = &missing.json()["detail"][0];
        assert_eq!(detail["loc"], serde_json::json!(["query", "group_number"]));
        assert_eq!(detail["type"], "missing");

        let malformed = get(format!("{base}/{path}?group_number=abc")).await;
        assert_eq!(malformed.status, 422, "{path}");
        let detail = &malformed.json()["detail"][0];
        assert_eq!(detail["loc"], serde_json::json!(["query", "group_number"]));
        assert_eq!(
            (detail["type"].as_str(), detail["input"].as_str()),
            (Some("int_parsing"), Some("abc"))
        );
        assert!(detail["msg"].as_str().unwrap().contains("integer"));
    }
    // Rejected requests do not move the cursor.
    let first = get(format!("{base}/data?group_number=0")).await.json();
    assert_eq!(first["batch_number"], 0);
}

#[tokio::test]
async fn health_describes_the_dataset_served() {
    let base = serve(synthetic(42)).await;
    let health = get(format!("{base}/health")).await;
    let total: u64 = planned_rows().iter().sum();
    assert_eq!(
        (health.status, health.json()),
        (
            200,
            serde_json::json!({
                "status": "ok",
                "dataset": { "kind": "generated", "batches": 6, "rows": total }
            })
        )
    );

    // A CSV copy without prev_sold_date, with a ragged row and an unparsable price.
    let text = "brokered_by,status,price,bed,bath,acre_lot,street,city,state,zip_code,house_size\n\
                1.0,for_sale,100000.0,3,2,0.1,7.0,Town,Ohio,43215,1200.0\n\
                2.0,for_sale,abc,3,2,0.1,8.0,Town,Ohio,43215,1200.0\n\
                3.0,for_sale,120000.0,3,2,0.1,9.0,Town, OH,Ohio,43215,1200.0\n\
                4.0,sold,130000.0,3,2,0.1,9.0,City,Ohio,43215,1300.0\n";
    let (listings, _) =
        CsvListings::from_reader(text.as_bytes(), "eleven.csv", NonZeroUsize::new(2).unwrap())
            .unwrap();
    let base = serve(Dataset::Csv(listings)).await;
    let health = get(format!("{base}/health")).await;
    assert_eq!(
        health.json(),
        serde_json::json!({
            "status": "ok",
            "dataset": {
                "kind": "csv",
                "batches": 2,
                "rows": 3,
                "dropped_ragged_rows": 1,
                "missing_optional_columns": ["prev_sold_date"],
                "unparsed_values": { "price": 1 }
            }
        })
    );
    // The ragged row is not served: batch 1 holds the file's fourth row.
    get(format!("{base}/data?group_number=1")).await;
    let second = get(format!("{base}/data?group_number=1")).await.json();
    assert_eq!(second["batch_number"], 1);
    assert_eq!(second["data"][0]["brokered_by"], 4.0);
    assert_eq!(second["data"][0]["prev_sold_date"], Value::Null);
}

#[tokio::test]
async fn a_csv_file_is_served_in_fixed_size_batches() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/realtor-sample.csv");
    let (listings, _) = CsvListings::open(&path, NonZeroUsize::new(2_000).unwrap()).unwrap();
    let rows = listings.rows().to_vec();
    let base = serve(Dataset::Csv(listings)).await;

    let mut served = Vec::new();
    loop {
        let reply = get(format!("{base}/data?group_number=3")).await;
        if reply.status == 400 {
            assert_eq!(reply.json()["detail"], EXHAUSTED_DETAIL);
            break;
        }
        assert_eq!(reply.status, 200);
        if served.is_empty() {
            // The sample's first row: Adjuntas, Puerto Rico, zip 00601, never sold before.
            let text = String::from_utf8(reply.body.clone()).unwrap();
            let first = &text[..text.find('}').unwrap()];
            assert!(first.contains("\"zip_code\":601.0"), "{first}");
            assert!(first.contains("\"prev_sold_date\":null"), "{first}");
            assert!(first.contains("\"brokered_by\":103378.0"), "{first}");
        }
        let raw: serde_json::Map<String, Value> = serde_json::from_slice(&reply.body).unwrap();
        let batch = raw["data"].as_array().unwrap();
        served.push(batch.len());
        for (offset, record) in batch.iter().enumerate() {
            let record = RawValue::from_string(record.to_string()).unwrap();
            let index = served[..served.len() - 1].iter().sum::<usize>() + offset;
            assert_eq!(
                parse_api_record(&record).listing,
                rows[index],
                "row {index}"
            );
        }
    }
    let mut expected = vec![2_000; rows.len() / 2_000];
    expected.push(rows.len() % 2_000);
    assert_eq!(served, expected);
}
