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
//! failed), so what is recorded while the body streams is counted in the same invocation, before
//! Lambda may freeze the environment.

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
        |response: Response| async move { response.map(|body| Body::new(FlushEmfAtEnd::new(body))) },
    ));
    Box::pin(lambda_http::run_with_streaming_response(app))
        .await
        .map_err(|error| anyhow::anyhow!("Lambda runtime failed: {error}"))
}

/// A response body that writes the invocation's EMF lines once it has ended (or failed).
struct FlushEmfAtEnd {
    body: Body,
    flushed: bool,
}

impl FlushEmfAtEnd {
    fn new(body: Body) -> FlushEmfAtEnd {
        FlushEmfAtEnd {
            body,
            flushed: false,
        }
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
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) && !self.flushed {
            self.flushed = true;
            telemetry::flush_emf();
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
