//! The predict binary started with its secrets in moto's Secrets Manager and SSM Parameter
//! Store only: the database URL from a secret (the predictor migrates that database, so it
//! was reached), the reload token from a SecureString parameter (it is the one accepted).

use std::time::Duration;

use appraise_testkit::{
    fixtures::{self, skip_without_tool},
    moto::MotoServer,
};

#[tokio::test]
async fn starts_with_its_database_url_and_token_from_secrets_manager_and_ssm() {
    if MotoServer::installed().is_none() {
        skip_without_tool("moto_server is not installed: run scripts/setup-tools.sh");
        return;
    }
    let moto = MotoServer::start().unwrap();
    let cluster = fixtures::shared_postgres();
    let db_url = cluster
        .create_database(&format!("secrets_{}", appraise_testkit::unique_suffix()))
        .await
        .unwrap();
    let arn = moto
        .create_secret("appraise/predict/database-url", &db_url)
        .unwrap();
    moto.put_secure_parameter("/appraise/predict/reload-token", "token-from-ssm")
        .unwrap();
    let (s3, _objects) = fixtures::s3_server(vec![]).await.unwrap();
    let mut env = s3.env(fixtures::BUCKET);
    env.extend(
        [
            // Empty counts as unset: whatever this process's environment holds.
            ("DATABASE_URL", String::new()),
            ("PREDICT_RELOAD_TOKEN", String::new()),
            ("DATABASE_URL_SECRET_ID", arn),
            (
                "PREDICT_RELOAD_TOKEN_SSM_PARAMETER",
                "/appraise/predict/reload-token".to_owned(),
            ),
            // The S3 server's credentials stay; moto accepts any.
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint()),
            ("AWS_ENDPOINT_URL_SSM", moto.endpoint()),
            ("PREDICT_POLL_SECONDS", "0".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value)),
    );
    let predict = crate::support::start_predictor(&env).await;
    let client = reqwest::Client::new();
    let healthz = client
        .get(format!("{}/healthz", predict.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);

    // The database behind the secret gets the predictor's migrations.
    let pool = appraise_core::db::pool(&db_url, 1).unwrap();
    let mut migrated = false;
    for _ in 0..600 {
        let client = pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT to_regclass('ops.schema_migrations') IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        if row.get(0) {
            migrated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        migrated,
        "the predictor never migrated the secret's database"
    );

    // The token from SSM is the one that opens /reload_model.
    let reload = |token: &'static str| {
        client
            .post(format!("{}/reload_model", predict.url()))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(reload("wrong-token").await.unwrap().status(), 401);
    let status = reload("token-from-ssm").await.unwrap().status();
    assert!(
        status != 401 && status != 403,
        "the SSM token was refused: {status}"
    );
}
