//! Request tracing shared by the embedded app, each service and the gateway.

use std::time::Duration;

use tower_http::classify::{ServerErrorsAsFailures, ServerErrorsFailureClass, SharedClassifier};
use tower_http::trace::{
    DefaultMakeSpan, DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, DefaultOnResponse,
    TraceLayer,
};
use tracing::Span;

pub type HttpTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    DefaultMakeSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    fn(ServerErrorsFailureClass, Duration, &Span),
>;

/// tower-http's tracing, except that a 503 is logged at WARN, not ERROR:
/// it is the answer while a dependency is down or not ready yet, and the
/// gateway relays one per request then; the outage itself is logged once
/// where it happens.
pub fn http_trace() -> HttpTrace {
    TraceLayer::new_for_http().on_failure(log_failure as fn(_, _, &Span))
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
