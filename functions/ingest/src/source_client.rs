//! The client side of the batch API (DESIGN.md §5): one call to `GET /data`, retried with
//! exponential backoff when the failure may pass (5xx, connection refused, timeout, a body cut
//! short or not JSON), and the `400` end-of-data answer read as a normal outcome.
//!
//! Retries stay inside the invocation's deadline ([`appraise_core::deadline`]): each attempt's
//! timeout (`SOURCE_TIMEOUT_SECS`) is clipped to the time left, and when less than
//! [`MIN_ATTEMPT`] would be left for the next attempt, after its backoff, the call stops with
//! [`SourceError::OutOfTime`] rather than being cut off by the platform mid-way.
//!
//! A retry is not free: the API's cursor has no acknowledgement, so a batch whose answer was
//! lost may already be gone from it. Every call therefore says how many of its attempts failed
//! ([`Fetch::lost_answers`]); the caller decides from that and from `batch_number` whether
//! the batch it wants may be behind the cursor (see [`crate::cursor`]).

use std::{future::Future, ops::Range, time::Duration};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::SourceConfig;

/// What one call to `GET /data` gave, retries included.
pub struct Fetch {
    pub answer: Fetched,
    /// Attempts of this call that failed before the one that answered. Each may have moved
    /// the API's cursor past a batch whose answer never arrived.
    pub lost_answers: u32,
}

/// What a successful attempt at `GET /data` gave.
pub enum Fetched {
    Batch(ReceivedBatch),
    /// The API answered 400 with its "everything was collected" detail.
    Exhausted,
}

/// A batch as received: the exact bytes, and where its records are within them.
pub struct ReceivedBatch {
    pub body: Bytes,
    pub batch_number: i32,
    pub group_number: Option<f64>,
    pub day: Option<String>,
    /// Byte range of each record of `data` within `body`, found when the body was parsed, so
    /// the tens of megabytes of a large batch are parsed once, not again for the records.
    record_ranges: Vec<Range<usize>>,
}

impl ReceivedBatch {
    /// How many records `data` holds.
    pub fn record_count(&self) -> usize {
        self.record_ranges.len()
    }

    /// Record `index` of `data`, still as raw JSON text (no field is parsed yet).
    pub fn record(&self, index: usize) -> &RawValue {
        let text = std::str::from_utf8(&self.body[self.record_ranges[index].clone()])
            .expect("a record of a body that parsed as JSON is UTF-8");
        serde_json::from_str(text).expect("a record of a body that parsed as JSON parses alone")
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    group_number: Option<f64>,
    #[serde(default)]
    day: Option<String>,
    batch_number: f64,
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
}

/// Why talking to the batch API failed for good (after the retries).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("batch API at {url} failed after {attempts} attempts; last error: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: String,
    },
    /// The invocation's deadline is too close for another attempt (or the wait before it).
    #[error(
        "batch API at {url}: stopped before the invocation's deadline, with no time left for \
         another attempt after {attempts} (last error: {last}); nothing was stored, the next \
         firing resumes"
    )]
    OutOfTime {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("batch API at {url} refused the request with HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    /// The answer was whole JSON of the API's shape, but a field holds what the contract
    /// does not allow; retrying would not change it.
    #[error("batch API at {url} answered with an invalid {field}: {reason}")]
    InvalidAnswer {
        url: String,
        field: &'static str,
        reason: String,
    },
}

/// The exact `detail` the course API sends once every batch was served.
pub const EXHAUSTED_DETAIL: &str = "Ya se recolectó toda la información minima necesaria";

enum Attempt<T> {
    Done(T),
    Retry(String),
    Fail(SourceError),
}

/// The batch API, as seen from ingest.
#[derive(Clone)]
pub struct SourceClient {
    http: reqwest::Client,
    config: SourceConfig,
}

impl SourceClient {
    pub fn new(config: SourceConfig) -> anyhow::Result<Self> {
        let http = config
            .trust(reqwest::Client::builder())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(SourceClient { http, config })
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![("group_number", self.config.group_number.to_string())];
        if let Some(day) = &self.config.day {
            params.push(("day", day.clone()));
        }
        params
    }

    /// Takes the next batch from the cursor.
    pub async fn fetch_next(&self) -> Result<Fetch, SourceError> {
        let url = format!("{}/data", self.config.base_url);
        let (answer, lost_answers) = self
            .with_retries(&url, |timeout| self.attempt(&url, timeout))
            .await?;
        Ok(Fetch {
            answer,
            lost_answers,
        })
    }

    /// Runs `attempt` until it is done or fails for good, with exponential backoff between
    /// attempts; answers what it gave and how many attempts failed first. Each attempt is given
    /// the configured timeout clipped to the invocation's remaining time
    /// ([`appraise_core::deadline`]), and no attempt or wait starts that could not end in it.
    async fn with_retries<T, A>(
        &self,
        url: &str,
        attempt: impl Fn(Duration) -> A,
    ) -> Result<(T, u32), SourceError>
    where
        A: Future<Output = Attempt<T>>,
    {
        let attempts = self.config.retries + 1;
        let mut wait = self.config.backoff;
        let mut last = String::new();
        for number in 1..=attempts {
            let Some(timeout) = attempt_time(self.config.timeout, Duration::ZERO) else {
                return Err(SourceError::OutOfTime {
                    url: url.to_owned(),
                    attempts: number - 1,
                    last,
                });
            };
            match attempt(timeout).await {
                Attempt::Done(answer) => return Ok((answer, number - 1)),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(reason) => {
                    metrics::counter!("source_request_failures_total").increment(1);
                    tracing::warn!(attempt = number, attempts, %reason, "batch API call failed");
                    last = reason;
                    if number < attempts {
                        if attempt_time(self.config.timeout, wait).is_none() {
                            return Err(SourceError::OutOfTime {
                                url: url.to_owned(),
                                attempts: number,
                                last,
                            });
                        }
                        tokio::time::sleep(wait).await;
                        wait = wait.saturating_mul(2);
                    }
                }
            }
        }
        Err(SourceError::GaveUp {
            url: url.to_owned(),
            attempts,
            last,
        })
    }

    async fn attempt(&self, url: &str, timeout: Duration) -> Attempt<Fetched> {
        let request = self.http.get(url).query(&self.params()).timeout(timeout);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Attempt::Retry(describe(&error)),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Attempt::Retry(format!("reading the body: {}", describe(&error))),
        };
        if status.is_server_error() {
            return Attempt::Retry(format!("HTTP {status}"));
        }
        if status == reqwest::StatusCode::BAD_REQUEST && is_exhausted(&body) {
            return Attempt::Done(Fetched::Exhausted);
        }
        if !status.is_success() {
            return Attempt::Fail(SourceError::Refused {
                url: url.to_owned(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            });
        }
        match serde_json::from_slice::<Envelope>(&body) {
            Ok(envelope) => {
                let number = envelope.batch_number;
                if number.fract() != 0.0 || !(0.0..=i32::MAX as f64).contains(&number) {
                    return Attempt::Fail(SourceError::InvalidAnswer {
                        url: url.to_owned(),
                        field: "batch_number",
                        reason: format!(
                            "{number} is not a whole number from 0 to {}; the batch was not stored",
                            i32::MAX
                        ),
                    });
                }
                let base = body.as_ptr() as usize;
                let record_ranges = envelope
                    .data
                    .iter()
                    .map(|record| {
                        let start = record.get().as_ptr() as usize - base;
                        start..start + record.get().len()
                    })
                    .collect();
                let (group_number, day) = (envelope.group_number, envelope.day);
                Attempt::Done(Fetched::Batch(ReceivedBatch {
                    batch_number: number as i32,
                    group_number,
                    day,
                    record_ranges,
                    body,
                }))
            }
            // Whole JSON, but not the API's shape (a field missing or of the wrong type): the
            // API is wrong, and asking again would not help.
            Err(error) if error.classify() == serde_json::error::Category::Data => {
                Attempt::Fail(SourceError::InvalidAnswer {
                    url: url.to_owned(),
                    field: "body",
                    reason: format!("not the batch API's shape: {error}"),
                })
            }
            // A body cut short or garbled on the way: the answer is lost; try again.
            Err(error) => {
                Attempt::Retry(format!("unreadable batch ({} bytes): {error}", body.len()))
            }
        }
    }

    /// Rewinds the cursor to the first batch (`GET /restart_data_generation`).
    pub async fn restart(&self) -> Result<(), SourceError> {
        let url = format!("{}/restart_data_generation", self.config.base_url);
        self.with_retries(&url, |timeout| self.restart_attempt(&url, timeout))
            .await?;
        Ok(())
    }

    async fn restart_attempt(&self, url: &str, timeout: Duration) -> Attempt<()> {
        let request = self.http.get(url).query(&self.params()).timeout(timeout);
        match request.send().await {
            Ok(response) if response.status().is_success() => Attempt::Done(()),
            Ok(response) if !response.status().is_server_error() => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Attempt::Fail(SourceError::Refused {
                    url: url.to_owned(),
                    status,
                    body,
                })
            }
            Ok(response) => Attempt::Retry(format!("HTTP {}", response.status())),
            Err(error) => Attempt::Retry(describe(&error)),
        }
    }
}

/// The shortest attempt worth starting: less than this before the deadline, and the firing
/// stops instead.
pub const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// How long an attempt that starts after waiting `wait` may take: `timeout`, clipped to the time
/// the invocation has left then; `None` when less than [`MIN_ATTEMPT`] would be left.
fn attempt_time(timeout: Duration, wait: Duration) -> Option<Duration> {
    match appraise_core::deadline::remaining() {
        None => Some(timeout),
        Some(left) => {
            let left = left.saturating_sub(wait);
            (left >= MIN_ATTEMPT).then(|| timeout.min(left))
        }
    }
}

fn is_exhausted(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Detail {
        detail: String,
    }
    serde_json::from_slice::<Detail>(body).is_ok_and(|d| d.detail == EXHAUSTED_DETAIL)
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
