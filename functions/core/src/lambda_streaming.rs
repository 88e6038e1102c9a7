//! An HTTP API whose answers may exceed a function URL's 6 MB buffered limit: on Lambda its
//! responses are streamed (function URL `InvokeMode: RESPONSE_STREAM`, up to 200 MB).
//!
//! The stand-in batch source answers `GET /data` with 16 to 79 MB of JSON for the course plan's
//! batches. A BUFFERED function URL refuses any answer above 6 MB, so [`serve_http_streaming`]
//! answers each invocation through `lambda_http::run_with_streaming_response`: the runtime POSTs
//! the response to the runtime API with `Lambda-Runtime-Function-Response-Mode: streaming`,
//! chunked, as an `application/vnd.awslambda.http-integration-response`: a JSON prelude
//! (status, headers, cookies), eight NUL bytes, then the body as the router produces it. The
//! router's body streams straight through, so memory stays flat whatever the batch size.
//!
//! Off Lambda it is [`runtime::serve_http`], unchanged. The predictor stays buffered
//! (`runtime::serve_http`): its answers are small, and a buffered URL is what it is deployed
//! behind. The function URL's invoke mode and the serving mode must agree: the SAM template gives
//! the source's URL `RESPONSE_STREAM`, and `infra/checks/check_sam_transform.py` checks it.
//!
//! Metrics: each invocation's EMF lines are written when the body has been sent out whole (or
//! failed), or when the body is dropped before that (the client went away), so what is recorded
//! while the body streams is counted in the same invocation, before Lambda may freeze the
//! environment, and is written once.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    Router,
    body::{Body, Bytes, HttpBody},
    response::Response,
};
use http_body::{Frame, SizeHint};

use crate::{platform::on_lambda, runtime, telemetry};

/// Runs an HTTP API like [`runtime::serve_http`], but on Lambda streams its responses.
pub async fn serve_http_streaming(service: &'static str, router: Router) -> anyhow::Result<()> {
    if !on_lambda() {
        return runtime::serve_http(service, router).await;
    }
    telemetry::init(service);
    tracing::info!(
        service,
        "serving HTTP invocations on the Lambda runtime API, responses streamed"
    );
    let app = runtime::with_operational_routes(router).layer(axum::middleware::map_response(
        |response: Response| async move {
            response.map(|body| Body::new(FlushEmfAtEnd::new(body, telemetry::flush_emf)))
        },
    ));
    Box::pin(lambda_http::run_with_streaming_response(app))
        .await
        .map_err(|error| anyhow::anyhow!("Lambda runtime failed: {error}"))
}

/// A response body that writes the invocation's EMF lines once: when it has ended (or failed),
/// or when it is dropped before that.
struct FlushEmfAtEnd {
    body: Body,
    /// Writes the EMF lines: [`telemetry::flush_emf`] (a counter in the tests).
    flush: fn(),
    flushed: bool,
}

impl FlushEmfAtEnd {
    fn new(body: Body, flush: fn()) -> FlushEmfAtEnd {
        FlushEmfAtEnd {
            body,
            flush,
            flushed: false,
        }
    }

    /// Writes the EMF lines unless they were written already.
    fn flush_once(&mut self) {
        if !self.flushed {
            self.flushed = true;
            (self.flush)();
        }
    }
}

impl Drop for FlushEmfAtEnd {
    fn drop(&mut self) {
        self.flush_once();
    }
}

impl HttpBody for FlushEmfAtEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(context);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.flush_once();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static EARLY_DROP_FLUSHES: AtomicUsize = AtomicUsize::new(0);
    static WHOLE_BODY_FLUSHES: AtomicUsize = AtomicUsize::new(0);

    fn count_early_drop() {
        EARLY_DROP_FLUSHES.fetch_add(1, Ordering::SeqCst);
    }

    fn count_whole_body() {
        WHOLE_BODY_FLUSHES.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_body_dropped_before_its_end_flushes_once() {
        let body = FlushEmfAtEnd::new(Body::from("not read"), count_early_drop);
        assert_eq!(EARLY_DROP_FLUSHES.load(Ordering::SeqCst), 0);
        drop(body);
        assert_eq!(EARLY_DROP_FLUSHES.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_read_whole_flushes_at_its_end_and_not_again_when_dropped() {
        let mut body = FlushEmfAtEnd::new(Body::from("whole"), count_whole_body);
        let first = std::future::poll_fn(|context| Pin::new(&mut body).poll_frame(context))
            .await
            .expect("a frame")
            .expect("no error");
        assert_eq!(first.into_data().expect("data"), Bytes::from("whole"));
        let end = std::future::poll_fn(|context| Pin::new(&mut body).poll_frame(context)).await;
        assert!(end.is_none(), "the body has ended");
        assert_eq!(WHOLE_BODY_FLUSHES.load(Ordering::SeqCst), 1);
        drop(body);
        assert_eq!(WHOLE_BODY_FLUSHES.load(Ordering::SeqCst), 1);
    }
}
