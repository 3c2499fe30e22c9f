//! Prometheus metrics: what every process counts and how it is served.
//!
//! The `metrics` facade records from anywhere (a counter is an atomic add;
//! with no recorder installed it is nothing at all); the process's one
//! Prometheus recorder, installed by [`install`], keeps the values and
//! renders the text format at `GET /metrics` on the process's own router
//! ([`router`]). What is a state rather than an event (outbox backlog,
//! queue depths, breakers, storage pools, orders by state) is read when the
//! page is asked for, by the [`Gauges`] a host registers: nothing polls
//! between scrapes.
//!
//! Names follow Prometheus conventions: the `agora_` prefix, `_total` for
//! counters, base units (`_seconds`), and labels from bounded sets only
//! (route templates, never paths; event types; service names; states).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests answered, by method, route template and status.
pub const HTTP_REQUESTS: &str = "agora_http_requests_total";
/// Time to answer, by method, route template and status.
pub const HTTP_DURATION: &str = "agora_http_request_duration_seconds";
/// Events the outbox relay handed to the transport, by service and type.
pub const EVENTS_PUBLISHED: &str = "agora_events_published_total";
/// Events applied by a consumer (first delivery), by service and type.
pub const EVENTS_CONSUMED: &str = "agora_events_consumed_total";
/// Deliveries of an event a consumer had applied already (absorbed).
pub const EVENTS_DUPLICATES: &str = "agora_events_duplicates_total";
/// Deliveries that failed and will be tried again.
pub const EVENTS_RETRIED: &str = "agora_events_retried_total";
/// Deliveries moved to the dead-letter queue.
pub const EVENTS_DEAD_LETTERED: &str = "agora_events_dead_lettered_total";
/// Deliveries a consumer handled together, in one transaction.
pub const CONSUMER_BATCH: &str = "agora_consumer_batch_size";
/// Requests answered from the idempotency store (a replayed key).
pub const IDEMPOTENT_REPLAYS: &str = "agora_idempotent_replays_total";
/// Events written to a service's outbox and not yet published.
pub const OUTBOX_BACKLOG: &str = "agora_outbox_backlog";
/// Age of the oldest event not yet published (0 when none waits).
pub const OUTBOX_OLDEST_AGE: &str = "agora_outbox_oldest_age_seconds";
/// Events waiting in a consuming service's queue.
pub const QUEUE_DEPTH: &str = "agora_queue_depth";
/// 1 for a breaker's current state, 0 for the others.
pub const BREAKER_STATE: &str = "agora_breaker_state";
/// Storage transactions committed, by backend (`sqlite`, `postgres`):
/// what an order costs the storage, counted rather than assumed.
pub const DB_TRANSACTIONS: &str = "agora_db_transactions_total";
/// Time a SQLite checkpoint took, by database and by whether it held the
/// writer (`writer="held"`: every write of that database waited for it).
pub const DB_CHECKPOINT: &str = "agora_db_checkpoint_seconds";
/// Storage connections by state (`idle`, `in_use`).
pub const DB_POOL_CONNECTIONS: &str = "agora_db_pool_connections";
/// The most storage connections a service opens.
pub const DB_POOL_MAX: &str = "agora_db_pool_max_connections";

/// Latency buckets, in seconds: from a cached read to a saga held up by
/// retries.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder (once; later calls return the
/// same handle), with histogram buckets for every `_seconds` metric and the
/// consumers' batch sizes.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(CONSUMER_BATCH.into()), BATCH_BUCKETS)
                })
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder installed first (a test's) keeps recording;
            // this handle then renders nothing, which the tests would show.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// The `# HELP` line of each family this module names.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request."
    );
    describe_counter!(
        EVENTS_PUBLISHED,
        "Events the outbox relay handed to the transport."
    );
    describe_counter!(EVENTS_CONSUMED, "Events a consumer applied.");
    describe_counter!(
        EVENTS_DUPLICATES,
        "Redeliveries of events a consumer had applied already (absorbed)."
    );
    describe_counter!(
        EVENTS_RETRIED,
        "Deliveries that failed and will be retried."
    );
    describe_counter!(
        EVENTS_DEAD_LETTERED,
        "Deliveries moved to the dead-letter queue."
    );
    describe_histogram!(
        CONSUMER_BATCH,
        "Deliveries a consumer handled in one transaction."
    );
    describe_counter!(
        DB_TRANSACTIONS,
        "Storage transactions committed, by backend."
    );
    describe_histogram!(
        DB_CHECKPOINT,
        Unit::Seconds,
        "Time a SQLite checkpoint took, by database and whether it held the writer."
    );
    describe_counter!(
        IDEMPOTENT_REPLAYS,
        "Requests answered from a stored Idempotency-Key."
    );
    describe_gauge!(
        OUTBOX_BACKLOG,
        "Events written to the outbox and not yet published."
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest event not yet published."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Events waiting in a consuming service's queue."
    );
    describe_gauge!(
        BREAKER_STATE,
        "1 for a circuit breaker's current state, 0 for the others."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Storage connections by state (in_use, idle)."
    );
    describe_gauge!(DB_POOL_MAX, "The most storage connections a service opens.");
}

/// What a host reads at scrape time: states, not events.
#[async_trait]
pub trait Gauges: Send + Sync + 'static {
    /// Sets this source's gauges to their values now.
    async fn update(&self);
}

#[derive(Clone)]
struct Page {
    handle: PrometheusHandle,
    gauges: Arc<Vec<Arc<dyn Gauges>>>,
}

/// `GET /metrics`: the Prometheus text format, after every gauge source
/// has been read (each bounded by a second, so one slow storage cannot
/// hold up the page).
pub fn router(gauges: Vec<Arc<dyn Gauges>>) -> Router {
    Router::new().route("/metrics", get(page)).with_state(Page {
        handle: install(),
        gauges: Arc::new(gauges),
    })
}

async fn page(State(page): State<Page>) -> Response {
    let reads = page
        .gauges
        .iter()
        .map(|g| tokio::time::timeout(Duration::from_secs(1), g.update()));
    futures_util::future::join_all(reads).await;
    page.handle.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page.handle.render(),
    )
        .into_response()
}

/// The route of a request the router has no template for, set before it
/// is routed (the gateway's proxy: the path prefix of the service it
/// forwards to).
#[derive(Clone, Copy, Debug)]
pub struct RouteLabel(pub &'static str);

/// A request's route in metrics and span names: its template, else its
/// [`RouteLabel`], else `unmatched`.
pub fn route_of(extensions: &axum::http::Extensions) -> &str {
    match (
        extensions.get::<MatchedPath>(),
        extensions.get::<RouteLabel>(),
    ) {
        (Some(path), _) => path.as_str(),
        (None, Some(label)) => label.0,
        (None, None) => "unmatched",
    }
}

/// Middleware counting and timing every request by method, route template
/// and status. A path no route matched is `unmatched`, so a scan of random
/// paths adds no series.
pub async fn observe_http(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = method_label(request.method());
    let route = route_of(request.extensions()).to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Methods outside the standard ones are one label, not one each.
fn method_label(method: &axum::http::Method) -> String {
    use axum::http::Method;
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ];
    match known.contains(method) {
        true => method.as_str().to_owned(),
        false => "OTHER".to_owned(),
    }
}

/// `n` events of `event_type` published by `service`.
pub fn published(service: &str, event_type: &str, n: u64) {
    metrics::counter!(EVENTS_PUBLISHED, "service" => service.to_owned(), "type" => event_type.to_owned())
        .increment(n);
}

/// How one delivery ended at `consumer`.
pub enum Delivery {
    Applied,
    Duplicate,
    Retried,
    DeadLettered,
}

pub fn delivered(consumer: &str, event_type: &str, outcome: Delivery) {
    let name = match outcome {
        Delivery::Applied => EVENTS_CONSUMED,
        Delivery::Duplicate => EVENTS_DUPLICATES,
        Delivery::Retried => EVENTS_RETRIED,
        Delivery::DeadLettered => EVENTS_DEAD_LETTERED,
    };
    metrics::counter!(name, "service" => consumer.to_owned(), "type" => event_type.to_owned())
        .increment(1);
}

pub fn batch(consumer: &str, size: usize) {
    metrics::histogram!(CONSUMER_BATCH, "service" => consumer.to_owned()).record(size as f64);
}

/// A request answered from the idempotency store, by operation
/// (`POST /orders`).
/// A storage transaction committed on `backend`.
pub fn committed(backend: &'static str) {
    metrics::counter!(DB_TRANSACTIONS, "backend" => backend).increment(1);
}

/// A SQLite checkpoint of `database` that took `took`; `writer` is
/// `"held"` when every write of that database waited for it, else `"free"`.
pub fn checkpointed(database: &str, writer: &'static str, took: Duration) {
    metrics::histogram!(DB_CHECKPOINT, "database" => database.to_owned(), "writer" => writer)
        .record(took);
}

pub fn replayed(operation: &str) {
    metrics::counter!(IDEMPOTENT_REPLAYS, "operation" => operation.to_owned()).increment(1);
}

/// A service's outbox: events waiting, and the oldest one's age.
pub fn outbox(service: &str, backlog: i64, oldest_age_secs: f64) {
    metrics::gauge!(OUTBOX_BACKLOG, "service" => service.to_owned()).set(backlog as f64);
    metrics::gauge!(OUTBOX_OLDEST_AGE, "service" => service.to_owned()).set(oldest_age_secs);
}

pub fn pool(service: &str, usage: crate::db::PoolUsage) {
    for (state, n) in [("in_use", usage.in_use), ("idle", usage.idle)] {
        metrics::gauge!(DB_POOL_CONNECTIONS, "service" => service.to_owned(), "state" => state)
            .set(f64::from(n));
    }
    metrics::gauge!(DB_POOL_MAX, "service" => service.to_owned()).set(f64::from(usage.max));
}

pub fn queue_depth(service: &str, depth: i64) {
    metrics::gauge!(QUEUE_DEPTH, "service" => service.to_owned()).set(depth as f64);
}

/// A breaker's state as three series, one of them 1.
pub fn breaker_state(service: &str, breaker: &str, state: &str) {
    for candidate in ["closed", "open", "half-open"] {
        let value = if candidate == state { 1.0 } else { 0.0 };
        metrics::gauge!(BREAKER_STATE,
            "service" => service.to_owned(),
            "breaker" => breaker.to_owned(),
            "state" => candidate.replace('-', "_"))
        .set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let odd = axum::http::Method::from_bytes(b"PROPFIND").unwrap();

        assert_eq!(method_label(&axum::http::Method::POST), "POST");
        assert_eq!(method_label(&odd), "OTHER");
    }
}
