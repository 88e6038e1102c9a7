//! `appraise-testkit`: the real infrastructure the tests stand on, and the local harness too:
//! a throw-away PostgreSQL cluster ([`postgres`]), an embedded S3 server with MinIO-style
//! notifications ([`s3_server`]), the function binaries run as child processes
//! ([`processes`]), an emulator of the Lambda runtime API ([`lambda_emulator`]), an
//! independent double of the course's batch API ([`course_api_double`]), a CA and TLS servers
//! for tests ([`tls`]), local AWS Secrets Manager and SSM ([`moto`]), a real MLflow tracking
//! server ([`mlflow_server`]), and the helpers
//! tests share ([`fixtures`]: a fresh migrated database, an S3 server with its bucket).
//!
//! The function crates use it only as a dev-dependency; the harness (`local/`, `appraise run`)
//! is its one other user, since running the system on one machine needs the same parts.

pub mod course_api_double;
pub mod fixtures;
pub mod lambda_emulator;
pub mod mlflow_server;
pub mod moto;
pub mod postgres;
pub mod processes;
pub mod s3_server;
pub mod tls;

use std::sync::atomic::{AtomicU64, Ordering};

/// A free TCP port on 127.0.0.1 (bound, then released, so a child process can take it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A string unique within this process, for directory and database names.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{:08x}", COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}
