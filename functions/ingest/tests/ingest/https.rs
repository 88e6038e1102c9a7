//! Ingest fetches batches from a batch API served over HTTPS with a certificate from a CA the
//! test made: trusted through the configured CA bundle, it stores them; untrusted, the firing
//! fails with an error that says the certificate is the problem, and nothing is stored.

use crate::support::{ingest_config, tick, world};
use appraise_core::runtime::StageError;
use appraise_ingest::IngestReport;
use appraise_testkit::{
    course_api_double::{CourseApi, Plan},
    tls::TestCa,
};

#[tokio::test]
async fn ingest_stores_batches_from_an_https_api_whose_ca_it_trusts() {
    let ca = TestCa::new("batch API test CA").unwrap();
    let certificate = ca.server_certificate(&["127.0.0.1"]).unwrap();
    let api = CourseApi::start_https(Plan::from_sample(0, &[30, 20]), &certificate)
        .await
        .unwrap();
    assert!(api.url().starts_with("https://"), "{}", api.url());

    let mut config = ingest_config(&api.url(), 10_000, 10_000);
    config.source.extra_roots =
        reqwest::Certificate::from_pem_bundle(ca.certificate_pem().as_bytes()).unwrap();
    let world = world(config).await;
    for n in 0..2 {
        match world.fire(&format!("https-{n}")).await {
            IngestReport::Stored(_) => {}
            other => panic!("firing {n}: {other:?}"),
        }
    }
    assert_eq!(world.batch_numbers().await, [0, 1]);
    assert_eq!(world.count("SELECT count(*) FROM raw.listings").await, 50);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_firing_saying_why() {
    let ca = TestCa::new("a CA ingest does not know").unwrap();
    let certificate = ca.server_certificate(&["127.0.0.1"]).unwrap();
    let api = CourseApi::start_https(Plan::from_sample(0, &[10]), &certificate)
        .await
        .unwrap();
    let mut config = ingest_config(&api.url(), 10_000, 10_000);
    config.source.retries = 0;
    let world = world(config).await;
    match world.ingest.ingest_tick(&tick("untrusted")).await {
        Err(StageError::Unavailable(error)) => {
            assert!(error.contains("certificate"), "{error}");
        }
        other => panic!("expected an unavailable batch API, got {other:?}"),
    }
    assert_eq!(world.count("SELECT count(*) FROM ops.batches").await, 0);
}
