//! An embedded S3 server (s3s over a local directory, s3s-fs) that sends MinIO-style
//! notifications.
//!
//! Stands in for MinIO on one machine: the functions talk to it with the real AWS SDK, and each
//! object it stores is announced, like MinIO's webhook target, to every [`NotificationRule`]
//! whose prefix and suffix match the key. A delivery answered 5xx or 429, or that cannot reach
//! its target, is retried with backoff (0.2 s doubling to 10 s) for [`DELIVERY_PATIENCE`]
//! (MinIO queues and retries too); each delivery's final outcome is published as a
//! [`Delivery`] so the harness can show what every stage did. Like a MinIO target with an auth
//! token, it can send `Authorization: Bearer <token>` with each delivery
//! ([`S3Server::set_webhook_token`]).
//!
//! s3s-fs streams files in 4 KiB reads, each a trip through tokio's blocking pool, which made
//! fetching a model artifact of a few megabytes slow (and the predictor's cold start with it),
//! so a plain GET of a whole object is answered from one read of its file.
//!
//! s3s-fs stores object `key` of bucket `b` at `<root>/b/key` and only checks that the joined
//! path stays under `<root>`: a key `../other/x` would land in bucket `other`. [`KeyGuard`]
//! refuses, with `400 InvalidArgument` and before s3s-fs sees the request, every key that is
//! not a plain relative path (a `.` or `..` segment, a leading `/`, an empty segment, a
//! backslash, a NUL) and every bucket name that breaks S3's naming rules, wherever the
//! request carries them: the path, a copy source, a multi-object delete's body, a form upload.

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use hyper::{Request, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::{
    S3Request, S3Result,
    access::{S3Access, S3AccessContext},
    auth::SimpleAuth,
    dto::{CopyObjectInput, CopySource, DeleteObjectsInput, PutObjectInput, UploadPartCopyInput},
    s3_error,
    service::S3ServiceBuilder,
};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

/// Where objects of matching keys are announced.
#[derive(Debug, Clone)]
pub struct NotificationRule {
    pub prefix: String,
    pub suffix: String,
    /// The webhook URL to POST the MinIO event body to; `None` only publishes the event.
    pub target: Option<String>,
}

impl NotificationRule {
    fn matches(&self, key: &str) -> bool {
        key.starts_with(&self.prefix) && key.ends_with(&self.suffix)
    }
}

/// One notification and what its target answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub key: String,
    pub target: Option<String>,
    /// HTTP status of the final attempt (`None`: no target, or it could not be reached).
    pub status: Option<u16>,
    /// The target's answer (a stage's JSON report), or the last error.
    pub response: String,
}

type Rules = Arc<std::sync::RwLock<Vec<NotificationRule>>>;
type WebhookToken = Arc<std::sync::RwLock<Option<String>>>;

/// The server's credentials (any values work; they are checked like real S3 signatures).
pub const ACCESS_KEY: &str = "appraise";
pub const SECRET_KEY: &str = "appraise-secret";

/// A running server; stops when dropped.
pub struct S3Server {
    address: SocketAddr,
    deliveries: broadcast::Sender<Delivery>,
    rules: Rules,
    webhook_token: WebhookToken,
    root: PathBuf,
    task: tokio::task::JoinHandle<()>,
    /// Set when the server made its own directory, which then goes when the server does.
    _temp_dir: Option<tempfile::TempDir>,
}

impl S3Server {
    /// Serves the directory `root` (buckets are its subdirectories) on 127.0.0.1:`port`
    /// (0 for any free port).
    pub async fn start(
        root: PathBuf,
        port: u16,
        rules: Vec<NotificationRule>,
    ) -> anyhow::Result<S3Server> {
        std::fs::create_dir_all(&root)?;
        let filesystem = s3s_fs::FileSystem::new(&root)
            .map_err(|error| anyhow::anyhow!("opening {}: {error:?}", root.display()))?;
        let mut builder = S3ServiceBuilder::new(filesystem);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        builder.set_access(KeyGuard);
        let s3 = builder.build();

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding the S3 server to 127.0.0.1:{port}"))?;
        let address = listener.local_addr()?;
        let (deliveries, _) = broadcast::channel(1024);
        let (created_tx, created_rx) = mpsc::unbounded_channel::<Created>();
        let rules: Rules = Arc::new(std::sync::RwLock::new(rules));
        let webhook_token = WebhookToken::default();
        tokio::spawn(dispatch(
            created_rx,
            rules.clone(),
            webhook_token.clone(),
            deliveries.clone(),
        ));

        let object_root = Arc::new(root.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s3 = s3.clone();
                let created_tx = created_tx.clone();
                let object_root = object_root.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let s3 = s3.clone();
                        let created_tx = created_tx.clone();
                        let object_root = object_root.clone();
                        async move {
                            let created = object_created(&request);
                            let whole_object = whole_object_get(&request, &object_root);
                            let mut response = match s3.call(request.map(s3s::Body::from)).await {
                                Ok(response) => response,
                                Err(error) => {
                                    tracing::warn!(?error, "S3 request failed");
                                    let mut response = http::Response::new(s3s::Body::empty());
                                    *response.status_mut() =
                                        http::StatusCode::INTERNAL_SERVER_ERROR;
                                    response
                                }
                            };
                            if response.status() == http::StatusCode::OK
                                && let Some(path) = whole_object
                            {
                                read_in_one_go(&mut response, &path).await;
                            }
                            if response.status().is_success()
                                && let Some(created) = created
                            {
                                let _ = created_tx.send(created);
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(S3Server {
            address,
            deliveries,
            rules,
            webhook_token,
            root,
            task,
            _temp_dir: None,
        })
    }

    /// Like [`S3Server::start`] on a fresh temporary directory (removed on drop), any port.
    pub async fn start_in_temp_dir(rules: Vec<NotificationRule>) -> anyhow::Result<S3Server> {
        let dir = tempfile::Builder::new().prefix("appraise-s3-").tempdir()?;
        let mut server = S3Server::start(dir.path().to_path_buf(), 0, rules).await?;
        server._temp_dir = Some(dir);
        Ok(server)
    }

    /// Replaces the notification rules (e.g. once the functions they target are listening).
    pub fn set_rules(&self, rules: Vec<NotificationRule>) {
        *self.rules.write().expect("rules lock is never poisoned") = rules;
    }

    /// Sends `Authorization: Bearer <token>` with every later delivery (`None`: no header), as
    /// MinIO does for a target with `MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>`.
    pub fn set_webhook_token(&self, token: Option<&str>) {
        *self
            .webhook_token
            .write()
            .expect("token lock is never poisoned") = token.map(str::to_owned);
    }

    /// `http://127.0.0.1:<port>`, for `S3_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn root(&self) -> &PathBuf {
        &self.root
    }

    /// Every notification sent from now on, with its target's answer.
    pub fn deliveries(&self) -> broadcast::Receiver<Delivery> {
        self.deliveries.subscribe()
    }

    /// Settings a function needs to reach this server with the given bucket.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        [
            ("S3_ENDPOINT", self.endpoint()),
            ("S3_BUCKET", bucket.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// A client configuration for this server.
    pub fn object_store_config(&self, bucket: &str) -> appraise_core::objects::ObjectStoreConfig {
        appraise_core::objects::ObjectStoreConfig {
            endpoint: Some(self.endpoint()),
            bucket: bucket.to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SECRET_KEY.to_owned(),
            session_token: None,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The access hook of the server: signed requests only (s3s's default), and only bucket names
/// and keys that stay inside their bucket's directory (see the module docs). s3s calls
/// [`S3Access::check`] for every operation, with the bucket and key of the request's path,
/// before it reads the body; the per-operation hooks see what the path does not carry.
pub struct KeyGuard;

#[async_trait::async_trait]
impl S3Access for KeyGuard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        let path = cx.s3_path();
        if let Some(bucket) = path.get_bucket_name() {
            check_bucket(bucket)?;
        }
        if let Some(key) = path.get_object_key() {
            check_key(key)?;
        }
        Ok(())
    }

    /// Also a browser-form upload (`POST /bucket`), whose key comes in the form.
    async fn put_object(&self, request: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        check_bucket(&request.input.bucket)?;
        check_key(&request.input.key)
    }

    async fn copy_object(&self, request: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        check_copy_source(&request.input.copy_source)?;
        check_bucket(&request.input.bucket)?;
        check_key(&request.input.key)
    }

    async fn upload_part_copy(&self, request: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        check_copy_source(&request.input.copy_source)?;
        check_bucket(&request.input.bucket)?;
        check_key(&request.input.key)
    }

    async fn delete_objects(&self, request: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        check_bucket(&request.input.bucket)?;
        request
            .input
            .delete
            .objects
            .iter()
            .try_for_each(|object| check_key(&object.key))
    }
}

/// S3's bucket naming rules (lowercase letters, digits, `.` and `-`; no `..`), which also keep
/// a name to one directory level.
fn check_bucket(bucket: &str) -> S3Result<()> {
    if bucket.contains(['/', '\\'])
        || bucket.contains("..")
        || !s3s::path::check_bucket_name(bucket)
    {
        return Err(s3_error!(
            InvalidBucketName,
            "bucket name {bucket:?} is not a valid S3 bucket name"
        ));
    }
    Ok(())
}

/// Why `key` could leave its bucket's directory (or alias another key there), if it could.
fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("is empty");
    }
    if key.starts_with('/') {
        return Some("starts with `/`");
    }
    if key.contains('\\') {
        return Some("contains a backslash");
    }
    if key.contains('\0') {
        return Some("contains a NUL character");
    }
    // A trailing `/` is a directory marker; every other segment must be a plain name.
    let segments = key.strip_suffix('/').unwrap_or(key).split('/');
    for segment in segments {
        match segment {
            "." | ".." => return Some("has a `.` or `..` path segment"),
            "" => return Some("has an empty path segment (`//`)"),
            _ => {}
        }
    }
    None
}

fn check_key(key: &str) -> S3Result<()> {
    match key_problem(key) {
        Some(problem) => Err(s3_error!(InvalidArgument, "object key {key:?} {problem}")),
        None => Ok(()),
    }
}

fn check_copy_source(source: &CopySource) -> S3Result<()> {
    match source {
        CopySource::Bucket { bucket, key, .. } => {
            check_bucket(bucket)?;
            check_key(key)
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "only a bucket/key copy source is supported"
        )),
    }
}

struct Created {
    bucket: String,
    key: String,
    event_name: &'static str,
}

/// Whether a request, if it succeeds, creates an object: a PUT of an object that is not a
/// multipart part, or the POST that completes a multipart upload.
fn object_created<B>(request: &Request<B>) -> Option<Created> {
    let query = request.uri().query().unwrap_or("");
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    };
    let event_name = match *request.method() {
        http::Method::PUT
            if !has("partNumber") && !has("uploadId") && !has("tagging") && !has("acl") =>
        {
            if request.headers().contains_key("x-amz-copy-source") {
                "ObjectCreated:Copy"
            } else {
                "ObjectCreated:Put"
            }
        }
        http::Method::POST if has("uploadId") => "ObjectCreated:CompleteMultipartUpload",
        _ => return None,
    };
    let path = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8()
        .ok()?;
    let (bucket, key) = path.trim_start_matches('/').split_once('/')?;
    (!key.is_empty()).then(|| Created {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        event_name,
    })
}

/// The file behind a request if it is a plain GetObject of a whole object: a GET of
/// `/bucket/key` without a range, and no query but the SDK's `x-id=GetObject`.
fn whole_object_get<B>(request: &Request<B>, root: &std::path::Path) -> Option<PathBuf> {
    if request.method() != http::Method::GET || request.headers().contains_key(http::header::RANGE)
    {
        return None;
    }
    if !matches!(
        request.uri().query(),
        None | Some("") | Some("x-id=GetObject")
    ) {
        return None;
    }
    let path = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8()
        .ok()?;
    let (bucket, key) = path.trim_start_matches('/').split_once('/')?;
    let inside = |part: &str| {
        std::path::Path::new(part)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    (!key.is_empty() && inside(bucket) && inside(key)).then(|| root.join(bucket).join(key))
}

/// Replaces s3s-fs's streamed body of a successful whole-object GET by the file read at once,
/// if the file still has the length the response announces (an object rewritten in between
/// keeps the streamed body, which reads the file s3s-fs opened).
async fn read_in_one_go(response: &mut http::Response<s3s::Body>, path: &std::path::Path) {
    let announced = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if let Ok(contents) = tokio::fs::read(path).await
        && announced == Some(contents.len())
    {
        *response.body_mut() = s3s::Body::from(bytes::Bytes::from(contents));
    }
}

/// Characters MinIO leaves unescaped in notification keys (Go's url.QueryEscape); a space
/// becomes `+`.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b' ');

/// The body MinIO POSTs to a webhook target for one created object.
pub fn minio_event(bucket: &str, key: &str, event_name: &str, sequence: u64) -> Value {
    let encoded_key = utf8_percent_encode(key, KEY_ESCAPE)
        .to_string()
        .replace(' ', "+");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "EventName": format!("s3:{event_name}"),
        "Key": format!("{bucket}/{key}"),
        "Records": [{
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "awsRegion": "",
            "eventTime": now,
            "eventName": format!("s3:{event_name}"),
            "userIdentity": { "principalId": ACCESS_KEY },
            "requestParameters": { "principalId": ACCESS_KEY, "region": "", "sourceIPAddress": "127.0.0.1" },
            "responseElements": { "x-amz-request-id": format!("{sequence:016X}") },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": { "name": bucket, "ownerIdentity": { "principalId": ACCESS_KEY }, "arn": format!("arn:aws:s3:::{bucket}") },
                "object": { "key": encoded_key, "sequencer": format!("{sequence:016X}") }
            },
            "source": { "host": "127.0.0.1", "port": "", "userAgent": "appraise-local" }
        }]
    })
}

/// Sends each created object to its matching rules, one object after the other (in the order
/// they were written), each delivery retried with backoff.
async fn dispatch(
    mut created: mpsc::UnboundedReceiver<Created>,
    rules: Rules,
    webhook_token: WebhookToken,
    deliveries: broadcast::Sender<Delivery>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15 * 60))
        .build()
        .expect("an HTTP client builds");
    let mut sequence = 0u64;
    while let Some(object) = created.recv().await {
        sequence += 1;
        let matching: Vec<NotificationRule> = rules
            .read()
            .expect("rules lock is never poisoned")
            .iter()
            .filter(|rule| rule.matches(&object.key))
            .cloned()
            .collect();
        let token = webhook_token
            .read()
            .expect("token lock is never poisoned")
            .clone();
        for rule in &matching {
            let body = minio_event(&object.bucket, &object.key, object.event_name, sequence);
            let delivery = deliver(&client, rule, token.as_deref(), &object.key, &body).await;
            let _ = deliveries.send(delivery);
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    rule: &NotificationRule,
    token: Option<&str>,
    key: &str,
    body: &Value,
) -> Delivery {
    let Some(target) = &rule.target else {
        return Delivery {
            key: key.to_owned(),
            target: None,
            status: None,
            response: String::new(),
        };
    };
    let mut wait = Duration::from_millis(200);
    let mut last = Delivery {
        key: key.to_owned(),
        target: Some(target.clone()),
        status: None,
        response: String::new(),
    };
    let started = std::time::Instant::now();
    loop {
        let mut request = client.post(target).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                last.status = Some(status.as_u16());
                last.response = response.text().await.unwrap_or_default();
                // 5xx and 429 may pass; anything else is final.
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return last;
                }
            }
            Err(error) => {
                last.status = None;
                last.response = error.to_string();
            }
        }
        if started.elapsed() + wait > DELIVERY_PATIENCE {
            return last;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// How long a delivery is retried (5xx, 429, unreachable) before it is given up: long enough
/// to ride out a database restart or a function's crash and restart, as platforms do (Knative
/// and Lambda retry for minutes).
pub const DELIVERY_PATIENCE: Duration = Duration::from_secs(90);

#[cfg(test)]
mod tests {
    use super::key_problem;

    #[test]
    fn only_plain_relative_keys_pass() {
        for fine in [
            "raw/batch-000001/manifest.json",
            "models/t 1+é/model..v2.json",
            "a.b/.c/d..",
            "dir/",
        ] {
            assert_eq!(key_problem(fine), None, "{fine}");
        }
        for bad in [
            "..",
            "../other/x",
            "a/../../other/x",
            "a/..",
            "./x",
            "a/./x",
            "/x",
            "a//x",
            "a\\..\\x",
            "a\0x",
            "",
        ] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
    }
}
