//! A small emulator of the AWS Lambda runtime API, to run a function binary in its Lambda mode
//! on this machine (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`) and invoke it.
//!
//! It implements the four calls a runtime makes: `GET …/invocation/next` (long-polls for the
//! next event), `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error` and
//! `POST …/init/error`. An invocation may reuse a request id, as Lambda does when it retries
//! an asynchronous invocation. An invocation still unanswered when its time limit passes fails
//! as on Lambda, with `errorType` `Sandbox.Timedout`; the function's late answer to it is
//! accepted (202) and dropped.
//!
//! A response may be buffered (one JSON document, at most [`BUFFERED_RESPONSE_LIMIT`] bytes, as
//! on Lambda: a larger one fails the invocation) or streamed, as the runtime API documents
//! for response streaming: the runtime sends `Lambda-Runtime-Function-Response-Mode: streaming`
//! and a chunked body, for an HTTP answer an `application/vnd.awslambda.http-integration-response`
//! made of a JSON prelude (`statusCode`, `headers`, `cookies`), eight NUL bytes, then the body;
//! a failure after the start comes as the trailers `Lambda-Runtime-Function-Error-Type` and
//! `Lambda-Runtime-Function-Error-Body` (base64).
//!
//! Two ways in:
//! - [`LambdaEmulator::invoke`] hands over any event and waits for the whole answer; a streamed
//!   HTTP answer is collected into the buffered function URL shape (`statusCode`, `headers`,
//!   `cookies`, `body`), so callers read both modes alike;
//! - [`LambdaEmulator::function_url`], an HTTP server in front of the function as a function
//!   URL is: each request becomes a payload format 2.0 event, and the answer an HTTP response,
//!   a streamed one passed on chunk by chunk as it arrives (memory stays flat for a big body).
//!   A function error is a 502, as a real function URL answers.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};

/// The content type of a streamed HTTP answer: prelude, [`PRELUDE_DELIMITER`], body.
const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";
/// What separates a streamed HTTP answer's JSON prelude from its body.
const PRELUDE_DELIMITER: [u8; 8] = [0; 8];
/// The largest buffered response Lambda accepts (6 MB); a larger one fails the invocation, as
/// Lambda fails it. Streamed responses may be far larger.
pub const BUFFERED_RESPONSE_LIMIT: usize = 6_291_556;
/// Longest prelude accepted before the delimiter must have come.
const PRELUDE_LIMIT: usize = 1 << 20;
/// How long a function URL request waits for the function (Lambda's longest timeout).
const FUNCTION_URL_PATIENCE: Duration = Duration::from_secs(900);

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The function's response payload.
    Response(Value),
    /// The function's error report (`errorType`, `errorMessage`).
    Error(Value),
}

/// What the function sent back for one invocation, as it arrives.
enum Answer {
    Buffered(Invocation),
    Streamed(StreamedAnswer),
}

/// A streamed response: its content type and its chunks as the function sends them; an `Err`
/// is the error trailers of a stream that failed after it started.
struct StreamedAnswer {
    content_type: Option<String>,
    chunks: mpsc::Receiver<Result<Bytes, String>>,
}

/// Lambda's longest function timeout: the time limit of an invocation that names none.
const LONGEST_TIME_LIMIT: Duration = Duration::from_secs(900);

struct Pending {
    request_id: String,
    event: Value,
    /// How long the invocation may run (`lambda-runtime-deadline-ms` is now plus this).
    time_limit: Duration,
    done: oneshot::Sender<Answer>,
}

/// An invocation the function holds: the number of its hand-over, and where its answer goes.
type HandedOver = (u64, oneshot::Sender<Answer>);

#[derive(Clone)]
struct Shared {
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    /// The invocations handed to the function and not yet answered, by request id, each with
    /// the number of its hand-over (a reused request id is a new invocation).
    waiting: Arc<Mutex<HashMap<String, HandedOver>>>,
    /// Invocations that ran out of time, whose late answer is accepted and dropped.
    timed_out: Arc<Mutex<std::collections::HashSet<String>>>,
    handed_over: Arc<AtomicU64>,
    init_errors: Arc<Mutex<Vec<Value>>>,
}

/// A running emulator; stops when dropped.
pub struct LambdaEmulator {
    address: SocketAddr,
    function_url: SocketAddr,
    submit: mpsc::UnboundedSender<Pending>,
    shared: Shared,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl LambdaEmulator {
    pub async fn start() -> anyhow::Result<LambdaEmulator> {
        let (submit, queue) = mpsc::unbounded_channel();
        let shared = Shared {
            queue: Arc::new(Mutex::new(queue)),
            waiting: Arc::default(),
            timed_out: Arc::default(),
            handed_over: Arc::default(),
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
        let runtime_api = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let front = FunctionUrl {
            submit: submit.clone(),
            next_request: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let function_url = listener.local_addr()?;
        let function_url_task = tokio::spawn(async move {
            let router = Router::new()
                .fallback(function_url_request)
                .with_state(front);
            let _ = axum::serve(listener, router).await;
        });
        Ok(LambdaEmulator {
            address,
            function_url,
            submit,
            shared,
            tasks: [runtime_api, function_url_task],
        })
    }

    /// The base URL (`http://127.0.0.1:<port>`, no trailing slash) of the function URL in
    /// front of the function: every path and method under it is one invocation.
    pub fn function_url(&self) -> String {
        format!("http://{}", self.function_url)
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
        self.invoke_with_time_limit(request_id, event, LONGEST_TIME_LIMIT, timeout)
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
        let answer = submit(&self.submit, request_id, event, time_limit);
        let collected = async { collect(answer.await?).await };
        match tokio::time::timeout(timeout, collected).await {
            Ok(result) => result,
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
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Queues `event` for the function and resolves to the start of its answer.
fn submit(
    queue: &mpsc::UnboundedSender<Pending>,
    request_id: &str,
    event: Value,
    time_limit: Duration,
) -> impl Future<Output = anyhow::Result<Answer>> + use<> {
    let (done, answer) = oneshot::channel();
    let request_id = request_id.to_owned();
    let sent = queue.send(Pending {
        request_id: request_id.clone(),
        event,
        time_limit,
        done,
    });
    async move {
        sent.map_err(|_| anyhow::anyhow!("the emulator stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("invocation {request_id} was dropped"))
    }
}

/// The whole of an answer; a streamed HTTP answer in the buffered function URL shape.
async fn collect(answer: Answer) -> anyhow::Result<Invocation> {
    let StreamedAnswer {
        content_type,
        mut chunks,
    } = match answer {
        Answer::Buffered(invocation) => return Ok(invocation),
        Answer::Streamed(streamed) => streamed,
    };
    let mut payload = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        match chunk {
            Ok(chunk) => payload.extend_from_slice(&chunk),
            Err(error) => {
                return Ok(Invocation::Error(
                    json!({"errorType": "StreamError", "errorMessage": error}),
                ));
            }
        }
    }
    if content_type.as_deref() != Some(HTTP_INTEGRATION) {
        return Ok(Invocation::Response(as_json(&payload)));
    }
    let (prelude, body) = split_prelude(&payload)?
        .ok_or_else(|| anyhow::anyhow!("a streamed HTTP answer without its prelude delimiter"))?;
    let mut buffered = prelude;
    match std::str::from_utf8(body) {
        Ok(text) => {
            buffered["body"] = json!(text);
            buffered["isBase64Encoded"] = json!(false);
        }
        Err(_) => {
            buffered["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
            buffered["isBase64Encoded"] = json!(true);
        }
    }
    Ok(Invocation::Response(buffered))
}

/// The JSON prelude and the rest, once `payload` holds the delimiter; `None` before.
fn split_prelude(payload: &[u8]) -> anyhow::Result<Option<(Value, &[u8])>> {
    let Some(at) = payload
        .windows(PRELUDE_DELIMITER.len())
        .position(|window| window == PRELUDE_DELIMITER)
    else {
        anyhow::ensure!(
            payload.len() <= PRELUDE_LIMIT,
            "no prelude delimiter in the first {PRELUDE_LIMIT} bytes of a streamed HTTP answer"
        );
        return Ok(None);
    };
    let prelude: Value = serde_json::from_slice(&payload[..at])
        .map_err(|error| anyhow::anyhow!("the streamed answer's prelude is not JSON: {error}"))?;
    anyhow::ensure!(
        prelude["statusCode"].is_u64(),
        "the streamed answer's prelude has no statusCode: {prelude}"
    );
    Ok(Some((prelude, &payload[at + PRELUDE_DELIMITER.len()..])))
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
    let hand_over = shared.handed_over.fetch_add(1, Ordering::Relaxed);
    shared
        .waiting
        .lock()
        .await
        .insert(pending.request_id.clone(), (hand_over, pending.done));
    tokio::spawn(time_out(
        shared.clone(),
        pending.request_id,
        hand_over,
        pending.time_limit,
    ));
    (
        StatusCode::OK,
        headers,
        Bytes::from(pending.event.to_string()),
    )
}

/// Ends invocation `request_id` (hand-over number `hand_over`) as Lambda does once its time
/// limit passed without an answer: the error `Sandbox.Timedout`. A late answer from the
/// function is then accepted and dropped (see [`finish`]).
async fn time_out(shared: Shared, request_id: String, hand_over: u64, time_limit: Duration) {
    tokio::time::sleep(time_limit).await;
    let mut waiting = shared.waiting.lock().await;
    if !matches!(waiting.get(&request_id), Some((current, _)) if *current == hand_over) {
        return;
    }
    let Some((_, done)) = waiting.remove(&request_id) else {
        return;
    };
    shared.timed_out.lock().await.insert(request_id);
    let _ = done.send(Answer::Buffered(Invocation::Error(json!({
        "errorType": "Sandbox.Timedout",
        "errorMessage": format!("Task timed out after {:.2} seconds", time_limit.as_secs_f64()),
    }))));
}

/// Hands `answer` to whoever waits for invocation `id`: 202. An answer to an invocation that
/// already timed out is dropped, with a 202 too, so the runtime carries on to its next event
/// (on Lambda the sandbox would be gone); an answer to no invocation is a 404.
async fn finish(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    let waiting = shared.waiting.lock().await.remove(id);
    match waiting {
        Some((_, done)) => {
            let _ = done.send(answer);
            StatusCode::ACCEPTED
        }
        None if shared.timed_out.lock().await.remove(id) => StatusCode::ACCEPTED,
        None => StatusCode::NOT_FOUND,
    }
}

fn as_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    request: Request,
) -> StatusCode {
    let headers = request.headers();
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if !streaming {
        let Ok(body) = request.into_body().collect().await else {
            return StatusCode::BAD_REQUEST;
        };
        let body = body.to_bytes();
        if body.len() > BUFFERED_RESPONSE_LIMIT {
            let invocation = Invocation::Error(json!({
                "errorType": "Function.ResponseSizeTooLarge",
                "errorMessage": format!(
                    "Response payload size ({} bytes) exceeded maximum allowed payload size ({BUFFERED_RESPONSE_LIMIT} bytes).",
                    body.len()
                ),
            }));
            finish(&shared, &id, Answer::Buffered(invocation)).await;
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        let invocation = Invocation::Response(as_json(&body));
        return finish(&shared, &id, Answer::Buffered(invocation)).await;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // A few chunks in flight: the function waits for the reader, as it would for a slow client.
    let (sender, chunks) = mpsc::channel(8);
    let status = finish(
        &shared,
        &id,
        Answer::Streamed(StreamedAnswer {
            content_type,
            chunks,
        }),
    )
    .await;
    if status != StatusCode::ACCEPTED {
        return status;
    }
    // Read to the end even once nobody listens (a timed-out invocation, a gone client), so the
    // function's upload completes.
    let mut listening = true;
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        let item = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(frame) => match frame.into_trailers().ok().and_then(|t| stream_error(&t)) {
                    Some(error) => Err(error),
                    None => continue,
                },
            },
            Err(error) => Err(format!("the response stream broke: {error}")),
        };
        let failed = item.is_err();
        if listening {
            listening = sender.send(item).await.is_ok();
        }
        if failed {
            break;
        }
    }
    StatusCode::ACCEPTED
}

/// The error a streamed response's trailers report, `"<type>: <body>"`, if they report one.
fn stream_error(trailers: &HeaderMap) -> Option<String> {
    let kind = trailers.get("lambda-runtime-function-error-type")?;
    let body = trailers
        .get("lambda-runtime-function-error-body")
        .and_then(|body| base64::engine::general_purpose::STANDARD.decode(body).ok())
        .map(|body| String::from_utf8_lossy(&body).into_owned())
        .unwrap_or_default();
    Some(format!(
        "{}: {body}",
        String::from_utf8_lossy(kind.as_bytes())
    ))
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(
        &shared,
        &id,
        Answer::Buffered(Invocation::Error(as_json(&body))),
    )
    .await
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    shared.init_errors.lock().await.push(as_json(&body));
    StatusCode::ACCEPTED
}

/// The function URL in front of the function.
#[derive(Clone)]
struct FunctionUrl {
    submit: mpsc::UnboundedSender<Pending>,
    next_request: Arc<AtomicU64>,
}

/// One function URL request: the event Lambda would build, the invocation, the answer.
async fn function_url_request(State(front): State<FunctionUrl>, request: Request) -> Response {
    let number = front.next_request.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("function-url-{number}");
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return bad_gateway(&format!("reading the request body: {error}")),
    };
    let event = function_url_event(&parts, &body, &request_id);
    let answer = submit(&front.submit, &request_id, event, LONGEST_TIME_LIMIT);
    let answer = match tokio::time::timeout(FUNCTION_URL_PATIENCE, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return bad_gateway(&format!("{error:#}")),
        Err(_) => return bad_gateway("the function did not answer in time"),
    };
    match answer {
        Answer::Buffered(Invocation::Response(payload)) => buffered_response(&payload),
        Answer::Buffered(Invocation::Error(error)) => bad_gateway(&error.to_string()),
        Answer::Streamed(streamed) => streamed_response(streamed).await,
    }
}

/// The payload format 2.0 event a function URL hands the function for `parts` and `body`.
fn function_url_event(parts: &http::request::Parts, body: &[u8], request_id: &str) -> Value {
    let host = "emulated.lambda-url.us-east-1.on.aws";
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), json!(values.join(",")));
    }
    headers.insert("host".to_owned(), json!(host));
    let cookies: Vec<String> = parts
        .headers
        .get_all("cookie")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or_default().split("; "))
        .map(str::to_owned)
        .collect();
    let (body, encoded) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (json!(text), false),
        Err(_) => (
            json!(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let path = parts.uri.path();
    let now = time::OffsetDateTime::now_utc();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "cookies": if cookies.is_empty() { Value::Null } else { json!(cookies) },
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "emulated",
            "domainName": host,
            "domainPrefix": "emulated",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent")
                    .and_then(|agent| agent.to_str().ok()).unwrap_or_default()
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.unix_timestamp().to_string(),
            "timeEpoch": now.unix_timestamp() * 1000
        },
        "body": body,
        "isBase64Encoded": encoded
    })
}

/// The HTTP response for a buffered answer: the function URL shape (`statusCode`, `headers`,
/// `cookies`, `body`, `isBase64Encoded`), or any other JSON as a 200 JSON body, as Lambda
/// reads a payload without `statusCode`.
fn buffered_response(payload: &Value) -> Response {
    let Some(status) = payload.get("statusCode").and_then(Value::as_u64) else {
        return ([("content-type", "application/json")], payload.to_string()).into_response();
    };
    let body = payload["body"].as_str().unwrap_or_default();
    let body = if payload["isBase64Encoded"] == true {
        match base64::engine::general_purpose::STANDARD.decode(body) {
            Ok(bytes) => bytes,
            Err(error) => return bad_gateway(&format!("the body is not base64: {error}")),
        }
    } else {
        body.as_bytes().to_vec()
    };
    http_response(status, payload, Body::from(body))
}

/// The HTTP response for a streamed answer, its body passed on as the chunks arrive.
async fn streamed_response(streamed: StreamedAnswer) -> Response {
    let StreamedAnswer {
        content_type,
        mut chunks,
    } = streamed;
    if content_type.as_deref() != Some(HTTP_INTEGRATION) {
        let content_type = content_type.unwrap_or_else(|| "application/octet-stream".to_owned());
        return (
            [("content-type", content_type)],
            Body::from_stream(receiver_stream(chunks)),
        )
            .into_response();
    }
    let mut head = Vec::new();
    let (prelude, rest) = loop {
        match chunks.recv().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(error)) => return bad_gateway(&error),
            None => return bad_gateway("the stream ended before its prelude delimiter"),
        }
        match split_prelude(&head) {
            Ok(Some((prelude, rest))) => break (prelude, Bytes::copy_from_slice(rest)),
            Ok(None) => continue,
            Err(error) => return bad_gateway(&format!("{error:#}")),
        }
    };
    let first = futures_util::stream::iter([Ok::<_, String>(rest)]);
    let body = Body::from_stream(futures_util::StreamExt::chain(
        first,
        receiver_stream(chunks),
    ));
    let status = prelude["statusCode"].as_u64().unwrap_or(200);
    http_response(status, &prelude, body)
}

fn receiver_stream(
    chunks: mpsc::Receiver<Result<Bytes, String>>,
) -> impl futures_util::Stream<Item = Result<Bytes, String>> {
    futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    })
}

/// A response with the status, headers (a string or a list of strings each) and cookies of a
/// buffered answer or a stream's prelude.
fn http_response(status: u64, head: &Value, body: Body) -> Response {
    let Some(status) = u16::try_from(status)
        .ok()
        .and_then(|status| StatusCode::from_u16(status).ok())
    else {
        return bad_gateway(&format!("not an HTTP status: {status}"));
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, values) in head["headers"].as_object().into_iter().flatten() {
        let values = match values {
            Value::Array(values) => values.clone(),
            value => vec![value.clone()],
        };
        for value in values {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(name, value);
            }
        }
    }
    for cookie in head["cookies"].as_array().into_iter().flatten() {
        if let Some(Ok(value)) = cookie.as_str().map(HeaderValue::from_str) {
            headers.append("set-cookie", value);
        }
    }
    response
}

/// What a function URL answers when the function failed: 502 (the reason in the body here,
/// to help a test say what went wrong).
fn bad_gateway(reason: &str) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [("content-type", "application/json")],
        json!({"Message": "Internal Server Error", "reason": reason}).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    //! The emulator's side of the runtime API, with the runtime played by hand: requests
    //! written byte by byte as the runtime API documents them, so nothing of ours builds them.

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PATIENCE: Duration = Duration::from_secs(60);

    /// Invokes `event` in the background; the runtime's part is the test's.
    fn invoke_in_background(
        emulator: &Arc<LambdaEmulator>,
        request_id: &'static str,
    ) -> tokio::task::JoinHandle<anyhow::Result<Invocation>> {
        let emulator = emulator.clone();
        tokio::spawn(async move { emulator.invoke(request_id, json!({}), PATIENCE).await })
    }

    async fn next_request_id(emulator: &LambdaEmulator) -> String {
        let url = format!(
            "http://{}/2018-06-01/runtime/invocation/next",
            emulator.runtime_api()
        );
        let response = reqwest::get(url).await.unwrap();
        response.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// POSTs a streamed response, chunked, with `trailers` (header lines, each ending in CRLF)
    /// after the last chunk; the emulator's status code.
    async fn post_streamed(
        emulator: &LambdaEmulator,
        id: &str,
        chunks: &[&[u8]],
        trailers: &str,
    ) -> u16 {
        let mut request = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: runtime\r\n\
             Lambda-Runtime-Function-Response-Mode: streaming\r\n\
             Content-Type: {HTTP_INTEGRATION}\r\nTransfer-Encoding: chunked\r\n\
             Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes();
        for chunk in chunks {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n");
        request.extend_from_slice(trailers.as_bytes());
        request.extend_from_slice(b"\r\n");
        let mut stream = tokio::net::TcpStream::connect(emulator.address)
            .await
            .unwrap();
        stream.write_all(&request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer[9..12].parse().unwrap()
    }

    const PRELUDE: &[u8] =
        br#"{"statusCode": 201, "headers": {"content-type": "text/plain"}, "cookies": []}"#;

    /// POSTs a buffered response for `id`; the emulator's status code.
    async fn post_buffered(emulator: &LambdaEmulator, id: &str, payload: Value) -> u16 {
        let url = format!(
            "http://{}/2018-06-01/runtime/invocation/{id}/response",
            emulator.runtime_api()
        );
        let client = reqwest::Client::new();
        let response = client.post(url).json(&payload).send().await.unwrap();
        response.status().as_u16()
    }

    #[tokio::test]
    async fn an_invocation_past_its_time_limit_fails_as_timed_out_and_its_late_answer_is_dropped() {
        let emulator = Arc::new(LambdaEmulator::start().await.unwrap());
        let slow = {
            let emulator = emulator.clone();
            tokio::spawn(async move {
                emulator
                    .invoke_with_time_limit(
                        "slow-1",
                        json!({}),
                        Duration::from_millis(200),
                        PATIENCE,
                    )
                    .await
            })
        };
        assert_eq!(next_request_id(&emulator).await, "slow-1");
        // The runtime never answers in time.
        let Invocation::Error(error) = slow.await.unwrap().unwrap() else {
            panic!("an invocation past its time limit did not fail");
        };
        assert_eq!(error["errorType"], "Sandbox.Timedout", "{error}");
        assert_eq!(
            error["errorMessage"], "Task timed out after 0.20 seconds",
            "{error}"
        );

        // Its late answer is accepted and dropped; the request id's next invocation is new.
        assert_eq!(post_buffered(&emulator, "slow-1", json!("late")).await, 202);
        let again = invoke_in_background(&emulator, "slow-1");
        assert_eq!(next_request_id(&emulator).await, "slow-1");
        assert_eq!(
            post_buffered(&emulator, "slow-1", json!("on time")).await,
            202
        );
        assert_eq!(
            again.await.unwrap().unwrap(),
            Invocation::Response(json!("on time"))
        );
        // An answer to no invocation at all is still refused.
        assert_eq!(
            post_buffered(&emulator, "slow-1", json!("again")).await,
            404
        );
    }

    #[tokio::test]
    async fn a_streamed_http_answer_is_collected_into_the_buffered_shape() {
        let emulator = Arc::new(LambdaEmulator::start().await.unwrap());
        let invocation = invoke_in_background(&emulator, "streamed-1");
        assert_eq!(next_request_id(&emulator).await, "streamed-1");
        // The delimiter split across chunks, as nothing forbids.
        let chunks: [&[u8]; 5] = [
            PRELUDE,
            b"\0\0\0",
            b"\0\0\0\0\0hello ",
            b"streamed",
            b" world",
        ];
        assert_eq!(
            post_streamed(&emulator, "streamed-1", &chunks, "").await,
            202
        );
        let Invocation::Response(answer) = invocation.await.unwrap().unwrap() else {
            panic!("not a response");
        };
        assert_eq!(answer["statusCode"], 201, "{answer}");
        assert_eq!(answer["headers"]["content-type"], "text/plain", "{answer}");
        assert_eq!(answer["body"], "hello streamed world", "{answer}");
    }

    #[tokio::test]
    async fn error_trailers_fail_a_streamed_invocation_with_their_type_and_body() {
        let emulator = Arc::new(LambdaEmulator::start().await.unwrap());
        let invocation = invoke_in_background(&emulator, "broken-1");
        assert_eq!(next_request_id(&emulator).await, "broken-1");
        let body = base64::engine::general_purpose::STANDARD.encode("the generator failed");
        let trailers = format!(
            "Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\n\
             Lambda-Runtime-Function-Error-Body: {body}\r\n"
        );
        let chunks: [&[u8]; 3] = [PRELUDE, &PRELUDE_DELIMITER, b"{\"data\": [1, 2"];
        assert_eq!(
            post_streamed(&emulator, "broken-1", &chunks, &trailers).await,
            202
        );
        let Invocation::Error(error) = invocation.await.unwrap().unwrap() else {
            panic!("a stream that failed midway was taken as a response");
        };
        assert_eq!(
            error["errorMessage"], "Runtime.StreamError: the generator failed",
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_buffered_answer_above_6_mb_fails_the_invocation_as_on_lambda() {
        let emulator = Arc::new(LambdaEmulator::start().await.unwrap());
        let invocation = invoke_in_background(&emulator, "big-1");
        assert_eq!(next_request_id(&emulator).await, "big-1");
        let body = format!("\"{}\"", "x".repeat(BUFFERED_RESPONSE_LIMIT));
        let url = format!(
            "http://{}/2018-06-01/runtime/invocation/big-1/response",
            emulator.runtime_api()
        );
        let status = reqwest::Client::new()
            .post(url)
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let Invocation::Error(error) = invocation.await.unwrap().unwrap() else {
            panic!("a 6 MB+ buffered answer was accepted");
        };
        assert_eq!(
            error["errorType"], "Function.ResponseSizeTooLarge",
            "{error}"
        );
    }
}
