//! What an operator sees of a running Agora: each process's `/metrics`
//! moving with the orders it handled, one trace per order across every
//! service (in one process, and across processes and the broker), and
//! JSON log lines that name the order, the event and the trace.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use opentelemetry::trace::{SpanId, TraceId};
use serde_json::Value;
use uuid::Uuid;

use crate::common::cluster::{self, Cluster};
use crate::common::{fresh_dir, order_body, spawn_app, traces, Api, ADMIN};

/// A scrape of `/metrics`, parsed: each series' labels and value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    async fn of(base: &str) -> Scrape {
        let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(r.status(), 200);
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        Scrape::parse(&r.text().await.unwrap())
    }

    fn parse(text: &str) -> Scrape {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels, value.parse().expect("a number"))
            })
            .collect();
        Scrape(series)
    }

    /// The sum of the series of `name` that have `labels` (0 if none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|(_, v)| v).sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.0
            .iter()
            .filter(move |(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, l, v)| (l, *v))
    }

    /// Every family name (without the histogram suffixes).
    fn families(&self) -> HashSet<String> {
        self.0
            .iter()
            .map(|(n, _, _)| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(n.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n))
                    .to_owned()
            })
            .collect()
    }
}

/// A series named by its family and some of its labels, and how far it
/// should move.
type Moves<'a> = [(&'a str, &'a [(&'a str, &'a str)], f64)];

/// How far each of `series` moved from `before` to `after`.
#[track_caller]
fn assert_moved(before: &Scrape, after: &Scrape, series: &Moves<'_>) {
    for (name, labels, by) in series {
        let moved = after.value(name, labels) - before.value(name, labels);
        assert_eq!(moved, *by, "{name}{labels:?} moved by {moved}, not {by}");
    }
}

/// `agora run` as its own process on a fresh data directory: its API as
/// the demo admin, the process, and its log lines (once it has exited).
async fn embedded_process(
    envs: &[(String, String)],
) -> (
    Api,
    tokio::process::Child,
    tokio::task::JoinHandle<Vec<String>>,
    agora_testing::DataDir,
) {
    let dir = fresh_dir();
    let args: Vec<String> = ["run", "--listen", "127.0.0.1:0", "--data-dir"]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.to_path_buf().display().to_string()])
        .collect();
    let (child, url, lines) = cluster::spawn(&args, envs).await;
    let api = Api::at(&url).signed_in(ADMIN).await;
    (api, child, lines, dir)
}

/// Places `n` orders of one customer that complete, and waits until they have.
async fn completed_orders(api: &Api, product: Uuid, n: usize) -> Vec<Uuid> {
    let customer = api.customer("metrics").await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = customer
            .place_order(&order_body(product, 1, "tok_visa"))
            .await;
        assert_eq!(customer.terminal(id).await["status"], "COMPLETED");
        ids.push(id);
    }
    ids
}

/// Places one order with `traceparent` and waits until it completes.
async fn traced_order(api: &Api, product: Uuid, traceparent: &str) -> Uuid {
    let customer = api.customer("traced").await;
    let r = customer
        .client
        .post(customer.url("/api/v1/orders"))
        .header("traceparent", traceparent)
        .json(&order_body(product, 1, "tok_visa"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id: Uuid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(customer.terminal(id).await["status"], "COMPLETED");
    id
}

/// Waits until no event waits in an outbox or a queue.
async fn at_rest(api: &Api) {
    api.eventually(|| async {
        let now = Scrape::of(&api.base).await;
        now.value("agora_outbox_backlog", &[]) == 0.0 && now.value("agora_queue_depth", &[]) == 0.0
    })
    .await;
    // The last consumer logs once its delivery is settled.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn terminate(mut child: tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("it stops on SIGTERM")
        .unwrap();
}

/// What every process of either mode exposes.
const EVERY_PROCESS: [&str; 2] = [
    "agora_http_requests_total",
    "agora_http_request_duration_seconds",
];

/// What every process that hosts services exposes besides.
const EVERY_HOST: [&str; 4] = [
    "agora_outbox_backlog",
    "agora_outbox_oldest_age_seconds",
    "agora_db_pool_connections",
    "agora_db_pool_max_connections",
];

#[tokio::test]
async fn the_embedded_metrics_move_with_the_orders_it_handles() {
    let (api, child, _lines, _dir) = embedded_process(&[]).await;
    let product = api.create_product(1_000, 10).await;
    let before = Scrape::of(&api.base).await;

    completed_orders(&api, product, 3).await;
    let key = Uuid::now_v7().to_string();
    let customer = api.customer("metrics").await;
    let body = order_body(product, 1, "tok_visa");
    let (first, _, _) = customer.post_with_key("/api/v1/orders", &key, &body).await;
    let (again, _, replayed) = customer.post_with_key("/api/v1/orders", &key, &body).await;
    assert_eq!((first, again, replayed), (201, 201, true));
    api.eventually(|| async {
        Scrape::of(&api.base)
            .await
            .value("agora_orders", &[("state", "completed")])
            == 4.0
    })
    .await;
    let after = Scrape::of(&api.base).await;

    let posted: &[(&str, &str)] = &[
        ("method", "POST"),
        ("route", "/api/v1/orders"),
        ("status", "201"),
    ];
    assert_moved(
        &before,
        &after,
        &[
            ("agora_http_requests_total", posted, 5.0),
            ("agora_http_request_duration_seconds_count", posted, 5.0),
            (
                "agora_idempotent_replays_total",
                &[("operation", "POST /orders")],
                1.0,
            ),
            ("agora_saga_transitions_total", &[("state", "pending")], 4.0),
            (
                "agora_saga_transitions_total",
                &[("state", "completed")],
                4.0,
            ),
            (
                "agora_saga_step_duration_seconds_count",
                &[("step", "paid")],
                4.0,
            ),
            (
                "agora_saga_duration_seconds_count",
                &[("outcome", "completed")],
                4.0,
            ),
            (
                "agora_events_published_total",
                &[("service", "order"), ("type", "OrderCreated")],
                4.0,
            ),
            (
                "agora_events_consumed_total",
                &[("service", "inventory"), ("type", "OrderCreated")],
                4.0,
            ),
            (
                "agora_events_consumed_total",
                &[("service", "payment"), ("type", "PaymentRequested")],
                4.0,
            ),
            (
                "agora_events_published_total",
                &[("service", "payment"), ("type", "PaymentSucceeded")],
                4.0,
            ),
            ("agora_events_dead_lettered_total", &[], 0.0),
        ],
    );
    assert_eq!(after.value("agora_orders", &[("state", "completed")]), 4.0);
    assert_eq!(after.value("agora_orders_requiring_attention", &[]), 0.0);
    assert!(
        after.value(
            "agora_consumer_batch_size_count",
            &[("service", "inventory")]
        ) >= 1.0
    );
    let families = after.families();
    for family in EVERY_PROCESS.iter().chain(&EVERY_HOST) {
        assert!(families.contains(*family), "no {family}");
    }
    for service in agora::services::names() {
        assert!(
            after.has("agora_outbox_backlog", &[("service", service)]),
            "{service}"
        );
        assert_eq!(
            after.value("agora_outbox_backlog", &[("service", service)]),
            0.0
        );
        assert!(after.value("agora_db_pool_max_connections", &[("service", service)]) >= 1.0);
    }
    assert!(after.has("agora_queue_depth", &[("service", "inventory")]));
    // The order service's stock check breaker: closed, one state of three.
    let breaker = [("service", "order"), ("breaker", "inventory-stock-check")];
    assert_eq!(after.value("agora_breaker_state", &breaker), 1.0);
    let closed = [breaker[0], breaker[1], ("state", "closed")];
    assert_eq!(after.value("agora_breaker_state", &closed), 1.0);
    // The order database's commits woke its checkpoint thread, which
    // timed its copy of the WAL.
    let checkpoints = [("database", "order"), ("writer", "free")];
    api.eventually(|| async {
        Scrape::of(&api.base)
            .await
            .value("agora_db_checkpoint_seconds_count", &checkpoints)
            >= 1.0
    })
    .await;
    terminate(child).await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn each_process_of_the_distributed_mode_counts_its_own_part_of_the_orders() {
    let cluster = Cluster::start(&[]).await;
    let product = cluster.create_product(1_000, 10).await;
    let scrape_all = || async {
        let mut all = HashMap::new();
        all.insert("gateway", Scrape::of(&cluster.base).await);
        for service in agora::services::names() {
            all.insert(service, Scrape::of(&cluster.instance_url(service)).await);
        }
        all
    };
    let before = scrape_all().await;

    completed_orders(&cluster, product, 3).await;
    let order = &cluster.instance_url("order");
    cluster
        .eventually(|| async {
            Scrape::of(order)
                .await
                .value("agora_orders", &[("state", "completed")])
                == 3.0
        })
        .await;
    let after = scrape_all().await;

    let posted: &[(&str, &str)] = &[("method", "POST"), ("status", "201")];
    // The gateway names the path prefix of the service it forwarded to.
    assert_moved(
        &before["gateway"],
        &after["gateway"],
        &[(
            "agora_http_requests_total",
            &[posted[0], posted[1], ("route", "/api/v1/orders")],
            3.0,
        )],
    );
    assert_moved(
        &before["order"],
        &after["order"],
        &[
            (
                "agora_http_requests_total",
                &[posted[0], posted[1], ("route", "/api/v1/orders")],
                3.0,
            ),
            (
                "agora_saga_transitions_total",
                &[("state", "completed")],
                3.0,
            ),
            (
                "agora_saga_duration_seconds_count",
                &[("outcome", "completed")],
                3.0,
            ),
            (
                "agora_events_published_total",
                &[("service", "order"), ("type", "OrderCreated")],
                3.0,
            ),
            (
                "agora_events_consumed_total",
                &[("service", "order"), ("type", "PaymentSucceeded")],
                3.0,
            ),
        ],
    );
    assert_moved(
        &before["inventory"],
        &after["inventory"],
        &[
            (
                "agora_events_consumed_total",
                &[("service", "inventory"), ("type", "OrderCreated")],
                3.0,
            ),
            (
                "agora_events_published_total",
                &[("service", "inventory"), ("type", "StockReserved")],
                3.0,
            ),
            ("agora_saga_transitions_total", &[], 0.0),
        ],
    );
    assert_moved(
        &before["payment"],
        &after["payment"],
        &[
            (
                "agora_events_consumed_total",
                &[("service", "payment"), ("type", "PaymentRequested")],
                3.0,
            ),
            (
                "agora_events_published_total",
                &[("service", "payment"), ("type", "PaymentSucceeded")],
                3.0,
            ),
            // Counted where it happens: the order's events are not payment's.
            ("agora_events_published_total", &[("service", "order")], 0.0),
        ],
    );
    assert_eq!(
        after["order"].value("agora_orders", &[("state", "completed")]),
        3.0
    );
    for (process, scrape) in &after {
        let families = scrape.families();
        for family in EVERY_PROCESS {
            assert!(families.contains(family), "{process} has no {family}");
        }
        if *process == "gateway" {
            assert!(!families.contains("agora_outbox_backlog"));
            continue;
        }
        for family in EVERY_HOST {
            assert!(families.contains(family), "{process} has no {family}");
        }
        // Each process sees its own storage only, with the pool it was given.
        assert_eq!(
            scrape.value("agora_db_pool_max_connections", &[]),
            4.0,
            "{process}"
        );
        assert_eq!(
            scrape.value("agora_db_pool_max_connections", &[("service", process)]),
            4.0
        );
    }
    for consumer in ["inventory", "payment", "shipping", "notification", "order"] {
        assert!(
            after[consumer].has("agora_queue_depth", &[("service", consumer)]),
            "{consumer}"
        );
    }
    cluster.stop().await;
}

/// The attribute `key` of a span, as text.
fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The services a saga's events reach, besides the order service that
/// takes the request.
const SAGA_CONSUMERS: [&str; 5] = ["order", "inventory", "payment", "shipping", "notification"];

#[tokio::test]
async fn one_order_is_one_trace_through_every_service_of_the_embedded_app() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 5).await;
    let (traceparent, trace, caller) = traces::watch();
    let caller = SpanId::from_hex(&caller).unwrap();

    traced_order(&app, product, &traceparent).await;
    app.settled().await;
    // The last consumer's span ends as its transaction commits.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = traces::spans_of(trace);
        if spans.iter().any(|s| s.name == "consume OrderCompleted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let request = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/orders")
        .expect("the request's span");
    assert_eq!(
        request.parent_span_id, caller,
        "it continues the caller's trace"
    );
    let publishes: HashMap<String, SpanId> = spans
        .iter()
        .filter(|s| s.name.starts_with("publish "))
        .map(|s| (attribute(s, "event_id").unwrap(), s.span_context.span_id()))
        .collect();
    let consumes: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("consume "))
        .collect();
    for consume in &consumes {
        let event = attribute(consume, "event_id").unwrap();
        assert_eq!(
            Some(&consume.parent_span_id),
            publishes.get(&event),
            "{} is a child of the span that published {event}",
            consume.name
        );
    }
    let services: HashSet<String> = consumes
        .iter()
        .filter_map(|s| attribute(s, "service"))
        .collect();
    for service in SAGA_CONSUMERS {
        assert!(
            services.contains(service),
            "no span of {service}: {services:?}"
        );
    }
    for name in [
        "publish OrderCreated",
        "consume StockReserved",
        "publish OrderCompleted",
    ] {
        assert!(spans.iter().any(|s| s.name == name), "no {name}");
    }
    let created = spans
        .iter()
        .find(|s| s.name == "publish OrderCreated")
        .unwrap();
    assert_eq!(created.parent_span_id, request.span_context.span_id());
}

/// An OTLP/HTTP receiver on loopback taking JSON: what each process sent.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = received.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).expect("OTLP JSON"));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

/// A span as a process exported it.
#[derive(Debug)]
struct Exported {
    process: String,
    name: String,
    span: String,
    parent: String,
    event_id: Option<String>,
}

fn exported_spans(received: &[Value], trace: TraceId) -> Vec<Exported> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_ascii_lowercase();
    let mut spans = Vec::new();
    for request in received {
        for resource in request["resourceSpans"].as_array().into_iter().flatten() {
            let process = resource["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .map(|a| text(&a["value"]["stringValue"]))
                .unwrap_or_default();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    if text(&span["traceId"]) != trace.to_string() {
                        continue;
                    }
                    let event_id = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["key"] == "event_id")
                        .map(|a| text(&a["value"]["stringValue"]));
                    spans.push(Exported {
                        process: process.clone(),
                        name: span["name"].as_str().unwrap_or_default().to_owned(),
                        span: text(&span["spanId"]),
                        parent: text(&span["parentSpanId"]),
                        event_id,
                    });
                }
            }
        }
    }
    spans
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn one_order_is_one_trace_across_the_processes_and_the_broker() {
    let (endpoint, received) = otlp_receiver().await;
    let cluster = Cluster::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;
    let product = cluster.create_product(1_000, 5).await;
    let (traceparent, trace, caller) = traces::fresh();

    traced_order(&cluster, product, &traceparent).await;
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exported_spans(&received.lock().unwrap(), trace);
        if spans.iter().any(|s| s.name == "consume OrderCompleted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let processes: HashSet<&str> = spans.iter().map(|s| s.process.as_str()).collect();
    for service in SAGA_CONSUMERS.iter().chain(&["gateway"]) {
        assert!(
            processes.contains(format!("agora-{service}").as_str()),
            "no span from {service}: {processes:?}"
        );
    }
    let requests: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.name == "POST /api/v1/orders")
        .collect();
    let gateway = requests
        .iter()
        .find(|s| s.process == "agora-gateway")
        .unwrap_or_else(|| {
            panic!(
                "the gateway's span: {:?}",
                spans
                    .iter()
                    .filter(|s| s.process == "agora-gateway")
                    .collect::<Vec<_>>()
            )
        });
    let order = requests
        .iter()
        .find(|s| s.process == "agora-order")
        .expect("the order service's span");
    assert_eq!(gateway.parent, caller);
    assert_eq!(
        order.parent, gateway.span,
        "the service continues the gateway's span"
    );
    let publishes: HashMap<&str, &Exported> = spans
        .iter()
        .filter(|s| s.name.starts_with("publish "))
        .map(|s| (s.event_id.as_deref().unwrap(), s))
        .collect();
    let consumes: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.name.starts_with("consume "))
        .collect();
    assert!(consumes.len() >= 7, "{consumes:#?}");
    for consume in consumes {
        let published = publishes[consume.event_id.as_deref().unwrap()];
        assert_eq!(
            consume.parent, published.span,
            "{consume:?} under {published:?}"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn json_logs_name_the_order_the_event_and_the_trace_on_every_line() {
    let envs = [
        ("AGORA_LOG_FORMAT".to_owned(), "json".to_owned()),
        (
            "RUST_LOG".to_owned(),
            "info,agora_platform::consumer=debug".to_owned(),
        ),
    ];
    let (api, child, lines, _dir) = embedded_process(&envs).await;
    let product = api.create_product(1_000, 5).await;
    let (traceparent, trace, _) = traces::fresh();
    let trace = trace.to_string();

    let order = traced_order(&api, product, &traceparent).await.to_string();
    at_rest(&api).await;
    terminate(child).await;
    let lines = lines.await.unwrap();

    let parsed: Vec<serde_json::Map<String, Value>> = lines
        .iter()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(object)) => object,
            _ => panic!("not a JSON object: {line}"),
        })
        .collect();
    for line in &parsed {
        for field in ["timestamp", "level", "message", "target"] {
            assert!(line.contains_key(field), "no {field}: {line:?}");
        }
    }
    let of_the_order: Vec<_> = parsed
        .iter()
        .filter(|l| l.get("order_id").and_then(Value::as_str) == Some(&order))
        .collect();
    let moved = of_the_order
        .iter()
        .find(|l| l["message"] == "order PAID -> COMPLETED")
        .expect("the saga's last step");
    assert_eq!(moved["trace_id"], trace);
    assert!(moved["event_id"]
        .as_str()
        .is_some_and(|id| id.parse::<Uuid>().is_ok()));
    let processed: HashSet<&str> = of_the_order
        .iter()
        .filter(|l| l["message"] == "event processed")
        .inspect(|l| {
            assert_eq!(l["trace_id"], trace, "{l:?}");
            assert!(l["event_id"]
                .as_str()
                .is_some_and(|id| id.parse::<Uuid>().is_ok()));
        })
        .filter_map(|l| l["service"].as_str())
        .collect();
    for service in SAGA_CONSUMERS {
        assert!(
            processed.contains(service),
            "{service} logged nothing: {processed:?}"
        );
    }
}
