//! Everything a run starts (PostgreSQL, the bucket, the batch API, the functions, MLflow with
//! `--mlflow`), and how the
//! functions hear of new objects.

use anyhow::Context;
use appraise_core::objects::{ObjectStore, ObjectStoreConfig};
use appraise_testkit::{
    mlflow_server::MlflowServer,
    postgres::Postgres,
    processes::FunctionProcess,
    s3_server::{Delivery, NotificationRule, S3Server},
};
use serde_json::Value;

use super::{
    BUCKET, RunArgs,
    console::{describe_drops, plural, thousands},
};

/// Everything a run starts; dropping it stops all of it.
pub(crate) struct Stack {
    pub(crate) _postgres: Option<Postgres>,
    /// The embedded S3 server, unless `S3_ENDPOINT` names another.
    pub(crate) s3: Option<S3Server>,
    pub(crate) deliveries: Option<tokio::sync::broadcast::Receiver<Delivery>>,
    /// The built-in batch API, unless `--source-url` names another.
    pub(crate) source: Option<FunctionProcess>,
    /// What the batch API says it serves (`GET /health`'s `dataset`), if it says.
    pub(crate) served: Value,
    /// The pipeline's database, which the summary is read from.
    pub(crate) db: appraise_core::db::DbPool,
    pub(crate) ingest: FunctionProcess,
    pub(crate) process: FunctionProcess,
    pub(crate) train: FunctionProcess,
    pub(crate) promote: FunctionProcess,
    pub(crate) predict: FunctionProcess,
    /// The MLflow server train, promote and predict (rollbacks) mirror to, with `--mlflow`.
    pub(crate) mlflow: Option<MlflowServer>,
}

pub(crate) async fn start_stack(
    args: &RunArgs,
    log_dir: &std::path::Path,
    run_dir: &std::path::Path,
) -> anyhow::Result<Stack> {
    let step = |message: &str| println!("==> {message}");

    // PostgreSQL.
    let (postgres, database_url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            step("PostgreSQL: using DATABASE_URL");
            (None, url)
        }
        _ => {
            step("PostgreSQL: starting a throw-away cluster");
            let cluster = tokio::task::spawn_blocking(Postgres::start).await??;
            let url = cluster.create_database("appraise").await?;
            println!("    {url}");
            (Some(cluster), url)
        }
    };

    // The bucket.
    let (s3, s3_env) = match std::env::var("S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            step("S3: using S3_ENDPOINT (the harness delivers the object events itself)");
            let config = ObjectStoreConfig::from_env()?;
            ObjectStore::new(&config).ensure_bucket().await?;
            let env = [
                "S3_ENDPOINT",
                "S3_BUCKET",
                "AWS_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ]
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect::<Vec<_>>();
            (None, env)
        }
        _ => {
            let root = run_dir.join("s3");
            let server = S3Server::start(root.clone(), 0, Vec::new()).await?;
            step(&format!(
                "S3: embedded server at {} (objects in {})",
                server.endpoint(),
                root.display()
            ));
            let env = server.env(BUCKET);
            ObjectStore::new(&server.object_store_config(BUCKET))
                .ensure_bucket()
                .await?;
            (Some(server), env)
        }
    };

    // The batch API and the functions.
    let (source, source_url) = match &args.source_url {
        Some(url) => {
            step(&format!("source: using the batch API at {url}"));
            (None, url.trim_end_matches('/').to_owned())
        }
        None => {
            let source_env = match &args.csv {
                Some(csv) => {
                    let csv = std::fs::canonicalize(csv)
                        .with_context(|| format!("--csv {}", csv.display()))?;
                    vec![("SOURCE_CSV".to_owned(), csv.display().to_string())]
                }
                None => vec![
                    ("SOURCE_SCALE".to_owned(), args.scale.to_string()),
                    ("SOURCE_SEED".to_owned(), args.seed.to_string()),
                ],
            };
            let source = FunctionProcess::start_logged("source", &source_env, log_dir).await?;
            step(&format!("source: batch API at {}", source.url()));
            let url = source.url();
            (Some(source), url)
        }
    };
    let served = describe_source(&source_url).await;

    let mut stage_env = s3_env;
    let db = appraise_core::db::pool(&database_url, 2)?;
    stage_env.push(("DATABASE_URL".to_owned(), database_url));
    // The functions' shared settings, so another function (e.g. a second predictor for a
    // benchmark) can join this run: `set -a; . <run>/functions.env; set +a`.
    let env_file = run_dir.join("functions.env");
    std::fs::write(
        &env_file,
        stage_env
            .iter()
            .map(|(k, v)| format!("{k}='{v}'\n"))
            .collect::<String>(),
    )
    .with_context(|| format!("writing {}", env_file.display()))?;
    let mut ingest_env = stage_env.clone();
    ingest_env.extend([
        ("SOURCE_URL".to_owned(), source_url),
        ("SOURCE_GROUP".to_owned(), args.group.to_string()),
        (
            "INGEST_FIRST_SAMPLE".to_owned(),
            args.first_sample.to_string(),
        ),
        (
            "INGEST_LATER_SAMPLE".to_owned(),
            args.later_sample.to_string(),
        ),
    ]);
    if let Some(day) = &args.day {
        ingest_env.push(("SOURCE_DAY".to_owned(), day.clone()));
    }
    let ingest = FunctionProcess::start_logged("ingest", &ingest_env, log_dir).await?;
    step(&format!("ingest: listening at {}", ingest.url()));
    let process = FunctionProcess::start_logged("process", &stage_env, log_dir).await?;
    step(&format!("process: listening at {}", process.url()));
    let mut train_env = stage_env.clone();
    train_env.extend([
        (
            "TRAIN_MIN_NEW_ROWS".to_owned(),
            args.min_new_rows.to_string(),
        ),
        ("TRAIN_RF_TREES".to_owned(), args.trees.to_string()),
    ]);
    // MLflow, with --mlflow: train, promote and predict (rollbacks) mirror to it, retrying every few seconds.
    let mlflow = if args.mlflow {
        let root = run_dir.join("mlflow");
        let server = MlflowServer::start(root.clone(), 0).await?;
        step(&format!(
            "MLflow: server at {} (database and artifacts in {})",
            server.url(),
            root.display()
        ));
        Some(server)
    } else {
        None
    };
    let mut promote_env = stage_env.clone();
    let mut predict_env = stage_env.clone();
    if let Some(server) = &mlflow {
        for env in [&mut train_env, &mut promote_env, &mut predict_env] {
            env.push(("MLFLOW_TRACKING_URI".to_owned(), server.url()));
            env.push(("MLFLOW_RETRY_SECS".to_owned(), "5".to_owned()));
        }
    }
    let train = FunctionProcess::start_logged("train", &train_env, log_dir).await?;
    step(&format!("train: listening at {}", train.url()));
    let promote = FunctionProcess::start_logged("promote", &promote_env, log_dir).await?;
    step(&format!("promote: listening at {}", promote.url()));
    let predict = FunctionProcess::start_logged("predict", &predict_env, log_dir).await?;
    step(&format!("predict: listening at {}", predict.url()));

    // Who hears about new objects: raw/ manifests wake process, clean/ manifests wake train,
    // candidates/ wake promote, production/ wakes the predictor, and an operator's ingest
    // request (the predictor's POST /runs/ingest) fires ingest.
    let deliveries = s3.as_ref().map(|server| {
        server.set_rules(vec![
            NotificationRule {
                prefix: "raw/".into(),
                suffix: "manifest.json".into(),
                target: Some(format!("{}/", process.url())),
            },
            NotificationRule {
                prefix: "clean/".into(),
                suffix: "manifest.json".into(),
                target: Some(format!("{}/", train.url())),
            },
            NotificationRule {
                prefix: "candidates/".into(),
                suffix: ".json".into(),
                target: Some(format!("{}/", promote.url())),
            },
            NotificationRule {
                prefix: "production/".into(),
                suffix: ".json".into(),
                target: Some(format!("{}/", predict.url())),
            },
            NotificationRule {
                prefix: appraise_core::keys::INGEST_REQUESTS.into(),
                suffix: ".json".into(),
                target: Some(format!("{}/", ingest.url())),
            },
        ]);
        server.deliveries()
    });
    println!(
        "    logs in {}; the functions' settings in {}",
        log_dir.display(),
        env_file.display()
    );
    Ok(Stack {
        _postgres: postgres,
        s3,
        deliveries,
        source,
        served,
        db,
        ingest,
        process,
        train,
        promote,
        predict,
        mlflow,
    })
}

/// Asks the batch API what it serves (`GET /health`, whose `dataset` appraise's `source`
/// fills in) and prints it, with a notice for each thing in a CSV it could not serve as is.
/// `Value::Null` when the API does not say (the course API does not).
pub(crate) async fn describe_source(url: &str) -> Value {
    let health: Value = match reqwest::get(format!("{url}/health")).await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let dataset = health["dataset"].clone();
    let count = |field: &str| dataset[field].as_i64().unwrap_or(0);
    match dataset["kind"].as_str() {
        Some("csv") => {
            println!(
                "    serving {} rows of the CSV in {} batches",
                thousands(count("rows")),
                count("batches")
            );
            let missing: Vec<&str> = dataset["missing_optional_columns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !missing.is_empty() {
                println!(
                    "    notice: the CSV has no {} {}: null in every row",
                    missing.join(", "),
                    plural(missing.len(), "column", "columns")
                );
            }
            if count("dropped_ragged_rows") > 0 {
                let dropped = count("dropped_ragged_rows");
                println!(
                    "    notice: {} malformed {} (a number of fields unlike the header's) dropped, not served",
                    thousands(dropped),
                    plural(dropped as usize, "row", "rows")
                );
            }
            let unparsed = describe_drops(&dataset["unparsed_values"]);
            if unparsed != "nothing" {
                println!("    notice: values that did not parse are served as null: {unparsed}");
            }
        }
        Some(_) => println!(
            "    serving {} generated rows in {} batches",
            thousands(count("rows")),
            count("batches")
        ),
        None => {}
    }
    dataset
}
