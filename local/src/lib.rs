//! The local harness's building blocks, shared with the tests: a throw-away PostgreSQL
//! cluster ([`postgres`]), an embedded S3 server with MinIO-style notifications
//! ([`s3_server`]), and the function binaries run as child processes ([`processes`]).

pub mod course_api_double;
pub mod lambda_emulator;
pub mod postgres;
pub mod processes;
pub mod s3_server;
pub mod testkit;

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
