//! Logs and traces, shared by every binary.
//!
//! Every span goes through OpenTelemetry (`tracing-opentelemetry`), so a
//! request's trace id is known whether or not it is exported: it is what
//! the `traceparent` of the events it causes carries (envelope and AMQP
//! headers), what each consumer's span continues, and a field of every JSON
//! log line. Spans leave the process only when an OTLP endpoint is given
//! ([`Options::otlp_endpoint`]); otherwise they end where they are made.
//!
//! One order is one trace: `POST /api/v1/orders` (its span continues an
//! incoming `traceparent`, such as the gateway's) → a `publish` span for
//! each event written to the outbox → a `consume` span in each subscriber,
//! child of that `publish` span → the `publish` spans of what it emits, and
//! so on to `OrderCompleted`.
//!
//! A span costs its fields' formatting for the log layer and a span builder
//! for OpenTelemetry, several of them an order: so a `publish` span is
//! built only when spans are exported. Otherwise its `traceparent` is made
//! directly, the same trace under a span id of its own, since nothing would
//! ever see that span (no log line is written inside it). Nor does the
//! OpenTelemetry layer time each span's busy and idle time, or attach its
//! context on every poll of a future in it: parents are found from the
//! current `tracing` span instead, which is the same span.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider, SpanExporter};
use opentelemetry_sdk::Resource;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use uuid::Uuid;

use crate::events::Envelope;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Human,
    /// One JSON object per line, with the fields of the spans it is in
    /// (trace id, order id, event id) at the top level.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: human or json")),
        }
    }
}

/// What [`init`] sets up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub log_format: LogFormat,
    /// Base URL of an OTLP/HTTP receiver (`http://host:4318`); spans go to
    /// its `/v1/traces`. `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` sends JSON
    /// instead of protobuf.
    pub otlp_endpoint: Option<String>,
    /// The OpenTelemetry `service.name` of this process.
    pub service_name: String,
    /// Log lines to stderr rather than stdout: for the commands whose
    /// stdout is their answer (`agora bench --json`, `agora loadgen`).
    pub logs_to_stderr: bool,
}

/// The process's tracer provider: flush it before exiting, or the last
/// batch of spans is lost.
#[must_use = "call shutdown before the process exits"]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports what is still buffered (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the process's logging and tracing, filtered by `RUST_LOG`
/// (default `info`). Safe to call more than once (tests do): the first
/// call wins.
pub fn init(options: &Options) -> anyhow::Result<Telemetry> {
    let mut provider = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(options.service_name.clone())
            .build(),
    );
    let exported = options.otlp_endpoint.is_some();
    if let Some(endpoint) = &options.otlp_endpoint {
        provider = provider.with_batch_exporter(otlp::exporter(endpoint)?);
    }
    Ok(install(provider.build(), options, true, exported))
}

/// As [`init`], with every span handed to `exporter` as it ends (the
/// tests' in-memory exporter), and log lines only when `RUST_LOG` is set.
pub fn init_with_exporter(
    options: &Options,
    exporter: impl SpanExporter + 'static,
) -> anyhow::Result<Telemetry> {
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(options.service_name.clone())
                .build(),
        )
        .with_simple_exporter(exporter)
        .build();
    let logs = std::env::var_os("RUST_LOG").is_some();
    Ok(install(provider, options, logs, true))
}

/// Whether the installed subscriber hands its spans to an exporter: set
/// once, by the [`init`] that installs it.
static EXPORTED: AtomicBool = AtomicBool::new(false);

/// Logs follow `RUST_LOG`; traces take every span at INFO or above, and
/// events at WARN or above as span events, whatever `RUST_LOG` says, so
/// that the `traceparent` of events is continued even when logs are quiet.
fn install(
    provider: SdkTracerProvider,
    options: &Options,
    logs: bool,
    exported: bool,
) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let tracer = provider.tracer("agora");
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            let most = match meta.is_span() {
                true => tracing::Level::INFO,
                false => tracing::Level::WARN,
            };
            *meta.level() <= most
        }));
    let to_stderr = options.logs_to_stderr;
    let writer = move || -> Box<dyn std::io::Write> {
        match to_stderr {
            true => Box::new(std::io::stderr()),
            false => Box::new(std::io::stdout()),
        }
    };
    let terminal = match to_stderr {
        true => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        false => std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let lines = match options.log_format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(terminal)
            .with_writer(writer)
            .compact()
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(writer)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(logs.then(|| lines.with_filter(filter)))
        .with(traces)
        .try_init();
    if installed.is_ok() {
        EXPORTED.store(exported, Ordering::Relaxed);
    }
    Telemetry { provider }
}

fn propagator() -> &'static TraceContextPropagator {
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

/// The remote context a `traceparent` names (an empty one if it names none).
pub fn remote_context(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    propagator().extract(&carrier)
}

/// The context an incoming request's `traceparent` header names.
pub fn extract(headers: &http::HeaderMap) -> Context {
    propagator().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// The current span's context as headers for an outgoing request.
pub fn outgoing_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let cx = Span::current().context();
    propagator().inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut headers));
    headers
}

/// `00-<trace id>-<span id>-<flags>`, or `None` for an invalid context.
pub fn traceparent(span: &SpanContext) -> Option<String> {
    span.is_valid()
        .then(|| format_traceparent(span.trace_id(), span.span_id(), span.trace_flags()))
}

fn format_traceparent(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> String {
    format!("00-{trace_id}-{span_id}-{:02x}", flags.to_u8())
}

/// The trace id of `span`, as it appears in logs and in exported traces.
pub fn trace_id(span: &Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

/// The span of one incoming request, continuing the caller's trace.
/// `route` is its template (bounded), never the path.
pub fn request_span(method: &str, route: &str, headers: &http::HeaderMap) -> Span {
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let _ = span.set_parent(extract(headers));
    span.record("trace_id", trace_id(&span));
    span
}

tokio::task_local! {
    /// The `consume` span of each event a consumer is handling in this
    /// task, by event id: what an event it emits is published under.
    static HANDLING: HashMap<Uuid, Context>;
}

/// The span a consumer handles `event` in: a child of the span that
/// published it, with the event's ids (and order id) as fields.
pub fn consume_span(consumer: &str, event: &Envelope) -> Span {
    let span = tracing::info_span!(
        "consume",
        otel.name = format!("consume {}", event.event_type),
        otel.kind = "consumer",
        service = consumer,
        event_id = %event.id,
        event_type = %event.event_type,
        order_id = tracing::field::Empty,
        product_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    record_subject(&span, event);
    let _ = span.set_parent(remote_context(&event.traceparent));
    span.record("trace_id", trace_id(&span));
    span
}

/// Runs `handling` with the consume spans of `events` known to
/// [`publish_traceparent`], so that what it emits continues their traces.
pub async fn handling<F: std::future::Future>(spans: &[(Uuid, Span)], handling: F) -> F::Output {
    let contexts = spans
        .iter()
        .map(|(id, span)| (*id, span.context()))
        .collect();
    HANDLING.scope(contexts, handling).await
}

/// The `traceparent` of an event about to be written to the outbox: that
/// of a `publish` span, child of the consume span of `cause` (when this
/// task handles it), else of `cause`'s own publish span, else of the
/// current span (a request's), else of nothing (a fresh trace). The span is
/// built only when spans are exported; otherwise only its ids are made.
pub fn publish_traceparent(event: &Envelope, cause: Option<&Envelope>) -> String {
    let parent = cause
        .and_then(|c| {
            HANDLING
                .try_with(|handling| handling.get(&c.id).cloned())
                .ok()
                .flatten()
                .or_else(|| Some(remote_context(&c.traceparent)))
        })
        .filter(|cx| cx.span().span_context().is_valid())
        .unwrap_or_else(|| Span::current().context());
    if !EXPORTED.load(Ordering::Relaxed) {
        return child_traceparent(&parent);
    }
    let span = tracing::info_span!(
        "publish",
        otel.name = format!("publish {}", event.event_type),
        otel.kind = "producer",
        event_id = %event.id,
        event_type = %event.event_type,
        order_id = tracing::field::Empty,
        product_id = tracing::field::Empty,
    );
    record_subject(&span, event);
    let _ = span.set_parent(parent.clone());
    let context = span.context();
    traceparent(context.span().span_context()).unwrap_or_else(|| child_traceparent(&parent))
}

/// The `traceparent` of a span that is not built: `parent`'s trace and
/// flags (a fresh, sampled trace if it has none) with a new span id.
fn child_traceparent(parent: &Context) -> String {
    let ids = RandomIdGenerator::default();
    let span = parent.span();
    let parent = span.span_context();
    let (trace_id, flags) = match parent.is_valid() {
        true => (parent.trace_id(), parent.trace_flags()),
        false => (ids.new_trace_id(), TraceFlags::SAMPLED),
    };
    format_traceparent(trace_id, ids.new_span_id(), flags)
}

/// The subject as the field its event names it by (`order_id` for the
/// saga's events).
fn record_subject(span: &Span, event: &Envelope) {
    if let Some(field) = crate::events::subject_field(&event.event_type) {
        span.record(field, event.subject.as_str());
    }
}

/// One JSON object per line: time, level, target, message and fields, and
/// the fields of every span the event is in (inner spans win), flattened.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), crate::clock::now_rfc3339().into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut names = Vec::new();
            for span in scope.from_root() {
                names.push(span.name());
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    line.extend(fields.into_iter().filter(|(k, _)| !k.starts_with("otel.")));
                }
            }
            line.insert("spans".into(), names.join(">").into());
        }
        event.record(&mut JsonVisitor(&mut line));
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// OTLP over HTTP through the build's reqwest: the exporter's own client
/// would be a second major version of reqwest in the build. The batch
/// processor exports from a thread of its own, outside the runtime; each
/// request is spawned onto the runtime that was current at start.
mod otlp {
    use std::time::Duration;

    use bytes::Bytes;
    use opentelemetry_http::{HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};

    pub fn exporter(endpoint: &str) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
        let client = Client {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| anyhow::anyhow!("the OTLP exporter starts inside the runtime"))?,
        };
        Ok(opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()?)
    }

    #[derive(Debug)]
    struct Client {
        client: reqwest::Client,
        runtime: tokio::runtime::Handle,
    }

    #[async_trait::async_trait]
    impl HttpClient for Client {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = self.client.clone();
            let sent = self.runtime.spawn(async move {
                let request = reqwest::Request::try_from(request)?;
                let answer = client.execute(request).await?;
                let mut response = Response::builder().status(answer.status().as_u16());
                for (name, value) in answer.headers() {
                    response = response.header(name.as_str(), value.as_bytes());
                }
                let body = answer.bytes().await?;
                Ok::<_, HttpError>(response.body(body)?)
            });
            sent.await?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_names_its_trace_and_span() {
        let cx = remote_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

        let span = cx.span().span_context().clone();
        assert_eq!(
            traceparent(&span).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert!(!remote_context("00-0-0-01").span().span_context().is_valid());
    }

    #[test]
    fn a_span_not_built_continues_its_parents_trace_under_a_span_id_of_its_own() {
        let parent = remote_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");

        let first = child_traceparent(&parent);
        let second = child_traceparent(&parent);

        let first = remote_context(&first).span().span_context().clone();
        let second = remote_context(&second).span().span_context().clone();
        for child in [&first, &second] {
            assert!(child.is_valid());
            assert_eq!(
                child.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert!(!child.is_sampled(), "the parent's flags");
        }
        assert_ne!(first.span_id().to_string(), "00f067aa0ba902b7");
        assert_ne!(first.span_id(), second.span_id());
    }

    #[test]
    fn a_span_not_built_without_a_parent_starts_a_sampled_trace() {
        let orphan = child_traceparent(&Context::new());

        let child = remote_context(&orphan).span().span_context().clone();
        assert!(child.is_valid(), "{orphan}");
        assert!(child.is_sampled());
        assert_ne!(
            remote_context(&child_traceparent(&Context::new()))
                .span()
                .span_context()
                .trace_id(),
            child.trace_id(),
            "a fresh trace each time"
        );
    }

    #[test]
    fn log_formats_parse_by_name() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("human".parse(), Ok(LogFormat::Human));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
