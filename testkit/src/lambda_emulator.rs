//! A small emulator of the AWS Lambda runtime API, to run a function binary in its Lambda mode
//! on this machine (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`) and invoke it.
//!
//! It implements the four calls a runtime makes: `GET …/invocation/next` (long-polls for the
//! next event), `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error` and
//! `POST …/init/error`. An invocation may reuse a request id, as Lambda does when it retries
//! an asynchronous invocation.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The function's response payload.
    Response(Value),
    /// The function's error report (`errorType`, `errorMessage`).
    Error(Value),
}

struct Pending {
    request_id: String,
    event: Value,
    /// How long the invocation may run (`lambda-runtime-deadline-ms` is now plus this).
    time_limit: Duration,
    done: oneshot::Sender<Invocation>,
}

#[derive(Clone)]
struct Shared {
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Invocation>>>>,
    init_errors: Arc<Mutex<Vec<Value>>>,
}

/// A running emulator; stops when dropped.
pub struct LambdaEmulator {
    address: SocketAddr,
    submit: mpsc::UnboundedSender<Pending>,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl LambdaEmulator {
    pub async fn start() -> anyhow::Result<LambdaEmulator> {
        let (submit, queue) = mpsc::unbounded_channel();
        let shared = Shared {
            queue: Arc::new(Mutex::new(queue)),
            waiting: Arc::default(),
            init_errors: Arc::default(),
        };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(LambdaEmulator {
            address,
            submit,
            shared,
            task,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.address.to_string()
    }

    /// The environment Lambda gives a function, pointing at this emulator.
    pub fn env(&self, function_name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Invokes the function with `event` under `request_id` and waits for its answer; the
    /// invocation's deadline is 900 s away (Lambda's longest timeout).
    pub async fn invoke(
        &self,
        request_id: &str,
        event: Value,
        timeout: Duration,
    ) -> anyhow::Result<Invocation> {
        self.invoke_with_time_limit(request_id, event, Duration::from_secs(900), timeout)
            .await
    }

    /// Like [`LambdaEmulator::invoke`], with the invocation's deadline `time_limit` after it
    /// is handed to the function (a function timeout of that length).
    pub async fn invoke_with_time_limit(
        &self,
        request_id: &str,
        event: Value,
        time_limit: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Invocation> {
        let (done, answer) = oneshot::channel();
        self.submit
            .send(Pending {
                request_id: request_id.to_owned(),
                event,
                time_limit,
                done,
            })
            .map_err(|_| anyhow::anyhow!("the emulator stopped"))?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(invocation)) => Ok(invocation),
            Ok(Err(_)) => anyhow::bail!("invocation {request_id} was dropped"),
            Err(_) => {
                let init = self.shared.init_errors.lock().await.clone();
                anyhow::bail!(
                    "invocation {request_id} got no answer in {timeout:?}; init errors: {init:?}"
                )
            }
        }
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn next(State(shared): State<Shared>) -> impl IntoResponse {
    let pending = shared.queue.lock().await.recv().await;
    let Some(pending) = pending else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + pending.time_limit.as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", pending.request_id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:local".to_owned(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".to_owned(),
    );
    set("content-type", "application/json".to_owned());
    shared
        .waiting
        .lock()
        .await
        .insert(pending.request_id, pending.done);
    (
        StatusCode::OK,
        headers,
        Bytes::from(pending.event.to_string()),
    )
}

async fn finish(shared: &Shared, id: &str, invocation: Invocation) -> StatusCode {
    match shared.waiting.lock().await.remove(id) {
        Some(done) => {
            let _ = done.send(invocation);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn as_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&shared, &id, Invocation::Response(as_json(&body))).await
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&shared, &id, Invocation::Error(as_json(&body))).await
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    shared.init_errors.lock().await.push(as_json(&body));
    StatusCode::ACCEPTED
}
