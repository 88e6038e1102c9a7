//! How functions reach their database and their secrets, against real servers: PostgreSQL with
//! TLS under each `sslmode` (`db_tls`), and secrets read from moto's Secrets Manager and SSM
//! (`secrets`).

mod db_tls;
mod secrets;
