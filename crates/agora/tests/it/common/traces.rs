//! The spans of the traces a test watches, from the SDK's in-memory
//! exporter. Every test of this binary shares one tracer: a test names its
//! own trace (the `traceparent` it sends) and only that trace's spans are
//! kept, so the exporter does not hold every other test's spans.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use agora_platform::telemetry::{self, Options, Telemetry};
use opentelemetry::trace::TraceId;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData, SpanExporter};

#[derive(Debug, Clone, Default)]
struct Watched {
    spans: InMemorySpanExporter,
    traces: Arc<Mutex<HashSet<TraceId>>>,
}

impl SpanExporter for Watched {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let kept: Vec<SpanData> = {
            let traces = self.traces.lock().unwrap();
            batch
                .into_iter()
                .filter(|s| traces.contains(&s.span_context.trace_id()))
                .collect()
        };
        self.spans.export(kept).await
    }
}

static TRACER: OnceLock<(Watched, Telemetry)> = OnceLock::new();

fn watched() -> &'static Watched {
    &TRACER
        .get_or_init(|| {
            let watched = Watched::default();
            let options = Options {
                service_name: "agora-tests".into(),
                ..Options::default()
            };
            let telemetry = telemetry::init_with_exporter(&options, watched.clone())
                .expect("the tracer installs");
            (watched, telemetry)
        })
        .0
}

/// Installs this binary's tracing (once): spans recorded, logs printed only
/// when `RUST_LOG` is set.
pub fn install() {
    watched();
}

/// A fresh trace: the `traceparent` a test sends to start it, its id, and
/// the id of the caller's span in it (the parent of the first span).
pub fn fresh() -> (String, TraceId, String) {
    let trace = TraceId::from(rand::random::<u128>());
    let caller = format!("{:016x}", rand::random::<u64>() | 1);
    (format!("00-{trace}-{caller}-01"), trace, caller)
}

/// A fresh trace ([`fresh`]) whose spans this process keeps.
pub fn watch() -> (String, TraceId, String) {
    let fresh = fresh();
    watched().traces.lock().unwrap().insert(fresh.1);
    fresh
}

/// The spans of `trace` that have ended so far.
pub fn spans_of(trace: TraceId) -> Vec<SpanData> {
    watched()
        .spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect()
}
