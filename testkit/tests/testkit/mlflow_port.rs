//! The MLflow server is healthy only when *it* answers: started on a port another HTTP server
//! already holds (one whose `/health` says 200, as MLflow's does), it fails saying the server
//! exited, instead of taking the other server's answer for its own.

use appraise_testkit::{fixtures, mlflow_server::MlflowServer};

#[tokio::test]
async fn another_server_on_the_port_is_not_taken_for_mlflow() {
    if appraise_testkit::mlflow_server::mlflow_command().is_none() {
        fixtures::skip_without_tool("no mlflow in target/tools-venv: run scripts/setup-tools.sh");
        return;
    }
    let impostor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = impostor.local_addr().unwrap().port();
    let router = axum::Router::new().route("/health", axum::routing::get(|| async { "OK" }));
    tokio::spawn(async move { axum::serve(impostor, router).await });

    let root = tempfile::tempdir().unwrap();
    let Err(failure) = MlflowServer::start(root.path().to_owned(), port).await else {
        panic!("the impostor's /health was taken for the MLflow server's");
    };
    let failure = format!("{failure:#}");
    assert!(failure.contains("(it exited)"), "{failure}");
    assert!(
        failure.to_lowercase().contains("address already in use"),
        "{failure}"
    );
}
