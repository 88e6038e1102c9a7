//! The test kit's own tests, one binary: the S3 server refuses keys that leave the bucket (`s3_keys`), and the throw-away cluster keeps commits through a crash (`postgres_durability`), the HTTPS server serves past a stalled handshake (`https_server`), and the MLflow server never takes another server's answer for its own (`mlflow_port`).

mod https_server;
mod mlflow_port;
mod postgres_durability;
mod s3_keys;
