//! Which platform this process runs on, read once from the environment it was started with.
//!
//! Both the [`runtime`](crate::runtime) (how to serve) and [`telemetry`](crate::telemetry)
//! (JSON logs and EMF metrics on Lambda) ask; neither depends on the other for it.

/// Whether this process runs on the Lambda runtime API (`AWS_LAMBDA_RUNTIME_API` is set): no
/// port, one invocation at a time, frozen in between.
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}
