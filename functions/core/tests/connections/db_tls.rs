//! `sslmode` against a real PostgreSQL with TLS on and a certificate from a CA the test made:
//! each mode connects, or is refused, as libpq would.

use std::{path::PathBuf, sync::OnceLock, time::Duration};

use appraise_core::db;
use appraise_testkit::{
    fixtures,
    postgres::{PASSWORD_ROLE, Postgres, ServerTls},
    tls::TestCa,
};

/// A cluster that accepts TLS connections only, presenting a certificate for `localhost` (and
/// no IP address) signed by [`TlsWorld::ca`]; and a second CA that signed nothing of it. The
/// cluster listens on 127.0.0.1: connecting to `localhost` matches the certificate's name,
/// connecting to `127.0.0.1` does not. (When `localhost` also resolves to ::1, tokio-postgres
/// tries each address in turn, so a success is still a success.)
struct TlsWorld {
    cluster: Postgres,
    ca: TestCa,
    other_ca: TestCa,
}

fn world() -> &'static TlsWorld {
    static WORLD: OnceLock<TlsWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        let ca = TestCa::new("appraise test CA").unwrap();
        let other_ca = TestCa::new("some other CA").unwrap();
        let certificate = ca.server_certificate(&["localhost"]).unwrap();
        let cluster = Postgres::start_with(Some(ServerTls {
            certificate,
            tls_only: true,
        }))
        .unwrap();
        TlsWorld {
            cluster,
            ca,
            other_ca,
        }
    })
}

impl TlsWorld {
    /// The cluster's `postgres` database at `host`, with `parameters` as the URL's query.
    fn url(&self, host: &str, parameters: &str) -> String {
        let url = self.cluster.url("postgres").replace("127.0.0.1", host);
        format!("{url}?{parameters}")
    }

    fn bundle(&self) -> PathBuf {
        self.ca.bundle_path().unwrap()
    }

    fn other_bundle(&self) -> PathBuf {
        self.other_ca.bundle_path().unwrap()
    }
}

/// Connects through the functions' own pool; says whether the session is encrypted, or why
/// it could not be opened (with every cause).
async fn connect(url: &str) -> Result<bool, String> {
    let pool = db::pool(url, 1).map_err(|error| format!("{error:#}"))?;
    let client = pool
        .get()
        .await
        .map_err(|error| format!("{:#}", anyhow::Error::new(error)))?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|error| error.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn disable_is_refused_by_a_server_that_accepts_tls_only() {
    let world = world();
    let error = connect(&world.url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap_err();
    assert!(
        error.contains("pg_hba.conf") && error.contains("no encryption"),
        "{error}"
    );
}

#[tokio::test]
async fn prefer_and_require_encrypt_whatever_the_certificate() {
    let world = world();
    // The client knows nothing of the CA that signed the server's certificate.
    for mode in ["prefer", "require"] {
        let encrypted = connect(&world.url("127.0.0.1", &format!("sslmode={mode}")))
            .await
            .unwrap_or_else(|error| panic!("sslmode={mode}: {error}"));
        assert!(encrypted, "sslmode={mode}");
    }
    // No sslmode at all is prefer.
    assert_eq!(connect(&world.url("127.0.0.1", "")).await, Ok(true));
}

#[tokio::test]
async fn require_with_a_ca_bundle_checks_the_chain_as_libpq_does() {
    let world = world();
    let url = world.url(
        "127.0.0.1",
        &format!(
            "sslmode=require&sslrootcert={}",
            world.other_bundle().display()
        ),
    );
    let error = connect(&url).await.unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn verify_full_needs_the_right_ca_and_the_right_host_name() {
    let world = world();
    let bundle = world.bundle();
    let good = world.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", bundle.display()),
    );
    assert_eq!(connect(&good).await, Ok(true));

    let wrong_ca = world.url(
        "127.0.0.1",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            world.other_bundle().display()
        ),
    );
    let error = connect(&wrong_ca).await.unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");

    // The certificate names localhost, not 127.0.0.1.
    let wrong_name = world.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", bundle.display()),
    );
    let error = connect(&wrong_name).await.unwrap_err();
    assert!(error.contains("not valid for name"), "{error}");
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_name() {
    let world = world();
    let by_address = world.url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", world.bundle().display()),
    );
    assert_eq!(connect(&by_address).await, Ok(true));

    let wrong_ca = world.url(
        "127.0.0.1",
        &format!(
            "sslmode=verify-ca&sslrootcert={}",
            world.other_bundle().display()
        ),
    );
    let error = connect(&wrong_ca).await.unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn require_is_refused_by_a_server_without_tls_and_prefer_falls_back() {
    let plain = fixtures::shared_postgres();
    let url = plain.url("postgres");
    let error = connect(&format!("{url}?sslmode=require"))
        .await
        .unwrap_err();
    assert!(error.contains("server does not support TLS"), "{error}");
    assert_eq!(connect(&format!("{url}?sslmode=prefer")).await, Ok(false));
}

#[tokio::test]
async fn a_stage_migrates_its_database_over_verify_full() {
    let world = world();
    let url = world
        .cluster
        .create_database(&format!("tls_{}", appraise_testkit::unique_suffix()))
        .await
        .unwrap();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        url.replace("127.0.0.1", "localhost"),
        world.bundle().display()
    );
    let pool = db::pool(&url, 2).unwrap();
    db::connect_and_migrate(&pool, Duration::from_secs(10))
        .await
        .unwrap();
    let applied: i64 =
        fixtures::query_value(&pool, "SELECT count(*) FROM ops.schema_migrations").await;
    assert!(applied >= 5, "{applied} migrations applied");
    let encrypted: bool = fixtures::query_value(
        &pool,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert!(encrypted);
}

#[tokio::test]
async fn an_unreadable_ca_bundle_stops_the_start_naming_the_setting() {
    let world = world();
    let url = world.url(
        "127.0.0.1",
        "sslmode=verify-full&sslrootcert=/no/such/bundle.pem",
    );
    let error = format!("{:#}", db::pool(&url, 1).unwrap_err());
    assert!(
        error.contains("sslrootcert") && error.contains("/no/such/bundle.pem"),
        "{error}"
    );
}

#[tokio::test]
async fn a_password_login_over_tls_binds_the_channel_to_the_certificate() {
    let world = world();
    let admin = db::pool(&world.url("127.0.0.1", "sslmode=require"), 1).unwrap();
    admin
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'open sesame';
             EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .await
        .unwrap();
    let url = |password: &str| {
        format!(
            "postgres://{PASSWORD_ROLE}:{password}@127.0.0.1:{}/postgres\
             ?sslmode=require&channel_binding=require",
            world.cluster.port()
        )
    };
    // The server checks the binding (SCRAM-SHA-256-PLUS): a wrong hash fails the login.
    assert_eq!(connect(&url("open%20sesame")).await, Ok(true));
    let error = connect(&url("wrong")).await.unwrap_err();
    assert!(error.contains("password authentication failed"), "{error}");
}
