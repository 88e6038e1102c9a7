//! Secret variables read from moto's Secrets Manager and SSM Parameter Store, created there by
//! boto3. One test, its cases in order: the variables it sets are process-wide, and no other
//! test in this binary reads them.

use appraise_core::{
    db,
    secrets::{self, SecretError, SecretSource},
};
use appraise_testkit::{
    fixtures::{self, skip_without_tool},
    moto::MotoServer,
};

fn set(name: &str, value: &str) {
    // SAFETY: only this test sets or reads these variables (see the module docs).
    unsafe { std::env::set_var(name, value) };
}

fn unset(name: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(name) };
}

#[tokio::test]
async fn secrets_come_from_the_variable_secrets_manager_or_ssm() {
    if MotoServer::installed().is_none() {
        skip_without_tool("moto_server is not installed: run scripts/setup-tools.sh");
        return;
    }
    let moto = MotoServer::start().unwrap();
    for (name, value) in moto.env() {
        set(&name, &value);
    }

    // The variable itself wins; its _SECRET_ID (which does not exist) is not even looked up.
    set("APPRAISE_T_PLAIN", "plain value");
    set("APPRAISE_T_PLAIN_SECRET_ID", "no-such-secret");
    let secret = secrets::optional("APPRAISE_T_PLAIN")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (secret.value(), &secret.source),
        ("plain value", &SecretSource::Environment)
    );

    // A Secrets Manager secret, by ARN and by name.
    let arn = moto
        .create_secret("appraise/token", "from secrets manager")
        .unwrap();
    for id in [arn.as_str(), "appraise/token"] {
        set("APPRAISE_T_SM_SECRET_ID", id);
        let secret = secrets::required("APPRAISE_T_SM", "a test secret")
            .await
            .unwrap();
        assert_eq!(secret.value(), "from secrets manager");
        assert_eq!(secret.source, SecretSource::SecretsManager(id.to_owned()));
        assert_eq!(secret.variable, "APPRAISE_T_SM_SECRET_ID");
        assert!(!format!("{secret:?}").contains("from secrets manager"));
    }

    // An SSM SecureString, decrypted.
    moto.put_secure_parameter("/appraise/token", "from ssm")
        .unwrap();
    set("APPRAISE_T_SSM_SSM_PARAMETER", "/appraise/token");
    let secret = secrets::optional("APPRAISE_T_SSM").await.unwrap().unwrap();
    assert_eq!(secret.value(), "from ssm");
    assert_eq!(
        secret.source,
        SecretSource::SsmParameter("/appraise/token".to_owned())
    );

    // Missing ones: errors naming the variable and saying not found.
    set("APPRAISE_T_MISSING_SECRET_ID", "appraise/nothing");
    let error = secrets::optional("APPRAISE_T_MISSING").await.unwrap_err();
    assert!(matches!(error, SecretError::NotFound { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("APPRAISE_T_MISSING_SECRET_ID") && text.contains("not found"),
        "{text}"
    );
    set("APPRAISE_T_NOPARAM_SSM_PARAMETER", "/appraise/nothing");
    let error = secrets::optional("APPRAISE_T_NOPARAM").await.unwrap_err();
    assert!(matches!(error, SecretError::NotFound { .. }), "{error:?}");

    // Both sources at once, and none at all.
    set("APPRAISE_T_BOTH_SECRET_ID", "appraise/token");
    set("APPRAISE_T_BOTH_SSM_PARAMETER", "/appraise/token");
    let text = secrets::optional("APPRAISE_T_BOTH")
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("not both"), "{text}");
    assert!(
        secrets::optional("APPRAISE_T_NONE")
            .await
            .unwrap()
            .is_none()
    );
    let text = secrets::required("APPRAISE_T_NONE", "a test secret")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("APPRAISE_T_NONE") && text.contains("APPRAISE_T_NONE_SECRET_ID"),
        "{text}"
    );

    // DATABASE_URL from an RDS secret's JSON, with the TLS default from DATABASE_SSLMODE: the
    // pool it makes reaches the real database.
    let cluster = fixtures::shared_postgres();
    let rds_json = serde_json::json!({
        "username": "appraise",
        "password": "p@ss:/word",
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": cluster.port(),
        "dbname": "postgres",
    })
    .to_string();
    let arn = moto.create_secret("appraise/rds", &rds_json).unwrap();
    unset("DATABASE_URL");
    set("DATABASE_URL_SECRET_ID", &arn);
    set("DATABASE_SSLMODE", "disable");
    let pool = db::pool_from_env().await.unwrap();
    let one: i32 = fixtures::query_value(&pool, "SELECT 1").await;
    assert_eq!(one, 1);
    let encrypted: bool = fixtures::query_value(
        &pool,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert!(!encrypted, "DATABASE_SSLMODE=disable applies");
    unset("DATABASE_URL_SECRET_ID");
    unset("DATABASE_SSLMODE");

    // An endpoint nobody answers on.
    set(
        "AWS_ENDPOINT_URL_SSM",
        &format!(
            "http://127.0.0.1:{}",
            appraise_testkit::free_port().unwrap()
        ),
    );
    let error = secrets::optional("APPRAISE_T_SSM").await.unwrap_err();
    assert!(
        matches!(error, SecretError::Unreachable { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("APPRAISE_T_SSM_SSM_PARAMETER") && text.contains("unreachable"),
        "{text}"
    );
    unset("AWS_ENDPOINT_URL_SSM");
}
