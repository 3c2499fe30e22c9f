//! Request tracing shared by the embedded app, each service and the gateway.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, ServerErrorsFailureClass, SharedClassifier};
use tower_http::trace::{DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, TraceLayer};
use tracing::Span;

pub type HttpTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<Body>) -> Span,
    DefaultOnRequest,
    fn(&Response<Body>, Duration, &Span),
    DefaultOnBodyChunk,
    DefaultOnEos,
    fn(ServerErrorsFailureClass, Duration, &Span),
>;

/// tower-http's tracing with a span per request that continues the
/// caller's `traceparent` (the gateway's, a browser's, a test's) and is
/// named by its route template; and a 503 logged at WARN, not ERROR: it is
/// the answer while a dependency is down or not ready yet, and the gateway
/// relays one per request then; the outage itself is logged once where it
/// happens.
pub fn http_trace() -> HttpTrace {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request<Body>) -> Span)
        .on_response(record_status as fn(&Response<Body>, Duration, &Span))
        .on_failure(log_failure as fn(_, _, &Span))
}

fn request_span(request: &Request<Body>) -> Span {
    let route = agora_platform::metrics::route_of(request.extensions());
    agora_platform::telemetry::request_span(request.method().as_str(), route, request.headers())
}

fn record_status(response: &Response<Body>, _latency: Duration, span: &Span) {
    span.record("http.response.status_code", response.status().as_u16());
}

fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &Span) {
    let latency_ms = latency.as_millis() as u64;
    match class {
        ServerErrorsFailureClass::StatusCode(status) if status.as_u16() == 503 => {
            tracing::warn!(%status, latency_ms, "answered 503 Service Unavailable")
        }
        class => tracing::error!(%class, latency_ms, "response failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::StatusCode;

    use super::*;

    /// What `log_failure` printed for `status`.
    fn logged_for(status: StatusCode) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            log_failure(
                ServerErrorsFailureClass::StatusCode(status),
                Duration::from_millis(3),
                &Span::none(),
            )
        });
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_503_is_a_warning_and_other_server_errors_stay_errors() {
        let unavailable = logged_for(StatusCode::SERVICE_UNAVAILABLE);
        let internal = logged_for(StatusCode::INTERNAL_SERVER_ERROR);

        assert!(unavailable.contains(" WARN "), "{unavailable}");
        assert!(internal.contains("ERROR"), "{internal}");
        assert!(internal.contains("500"), "{internal}");
    }
}
