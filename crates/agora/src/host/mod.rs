//! One host for both modes: it composes services over a transport, each
//! service on its own storage, serves them behind one set of HTTP layers,
//! and stops them cleanly. The embedded app ([`crate::app`]) and `agora
//! service` ([`crate::service`]) only choose the values: which services, on
//! which storage, over which transport, with which settings.
//!
//! For every service it runs, a host starts the outbox relay, the periodic
//! sweeps (the service's own, plus vacuum and retention), its background
//! work and its consumers (supervised: a panic restarts them). Every queue
//! fed by what it publishes is bound before the first publish.

pub mod gauges;
pub mod health;
pub mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::auth::{authenticate, Operator, Verifier};
use agora_platform::breaker::Breaker;
use agora_platform::http::{not_found_fallback, ApiError, Json, MAX_BODY_BYTES};
use agora_platform::periodic::{run_periodic, Periodic};
use agora_platform::retention::{Keep, Retention};
use agora_platform::server::Limits;
use agora_platform::service::{Context, Parts, Service, Settings};
use agora_platform::supervise::{supervise, Supervised};
use agora_platform::transport::{Publisher, Transport};
use agora_platform::vacuum::Vacuum;
use agora_platform::{outbox, Db};
use async_trait::async_trait;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::Extensions;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::services;
use health::{Check, Probe};

/// One service of a host, on its storage (open and migrated).
pub struct Member {
    pub service: &'static dyn Service,
    pub db: Db,
}

/// What a host runs, and how.
pub struct Plan {
    pub listen: String,
    pub members: Vec<Member>,
    pub transport: Arc<dyn Transport>,
    pub settings: Settings,
    /// What the services the members need offer them.
    pub peers: Extensions,
    /// How long the outbox relay waits for more events before publishing.
    pub relay_linger: Duration,
    /// Consumers of each consuming member's queue in this process.
    pub consumers: usize,
    /// Consumers not started: their queues fill up durably.
    pub paused_consumers: Vec<String>,
    pub limits: Limits,
    /// What the access tokens of every request are verified with.
    pub verifier: Arc<Verifier>,
    /// Serve the operator's queue and dead-letter endpoints here.
    pub operator_routes: bool,
    /// Serve the storefront and the console here.
    pub web: bool,
}

pub struct Host {
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    transport: Arc<dyn Transport>,
    dbs: Vec<Db>,
}

impl Host {
    pub async fn build(plan: Plan) -> anyhow::Result<Host> {
        let mut built: Vec<(&Member, Parts)> = Vec::with_capacity(plan.members.len());
        for member in &plan.members {
            plan.transport.attach(member.service.name(), &member.db);
            let context =
                Context::new(member.db.clone(), plan.settings.clone(), plan.peers.clone());
            built.push((member, member.service.build(&context).await?));
        }
        // Every queue is bound before any relay publishes, so an event left
        // in an outbox by the previous run reaches all of its subscribers.
        let mut queues = Vec::new();
        for member in &plan.members {
            for queue in services::queues_fed_by(member.service.name()) {
                if !queues.contains(&queue) {
                    queues.push(queue);
                }
            }
        }
        plan.transport.bind(&queues).await?;

        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut router = Router::new();
        let mut breakers = Vec::new();
        let mut named_breakers = Vec::new();
        let mut supervised = Vec::new();
        let mut service_gauges = Vec::new();
        let publisher: Arc<dyn Publisher> = plan.transport.clone();
        for (member, parts) in built {
            let db = &member.db;
            tasks.push(tokio::spawn(outbox::run_relay(
                db.clone(),
                publisher.clone(),
                plan.relay_linger,
                shutdown.clone(),
            )));
            for task in sweeps(
                db,
                &plan.settings.keep,
                plan.settings.idempotency_ttl,
                &parts,
            ) {
                tasks.push(tokio::spawn(run_periodic(task, shutdown.clone())));
            }
            for task in parts.background {
                tasks.push(tokio::spawn(task(shutdown.clone())));
            }
            tasks.push(tokio::spawn(mask_kept_secrets(db.clone())));
            named_breakers.extend(
                parts
                    .breakers
                    .iter()
                    .map(|b| (member.service.name(), b.clone())),
            );
            breakers.extend(parts.breakers);
            service_gauges.extend(parts.gauges);
            router = router.merge(parts.router);
            let Some(handler) = parts.handler else {
                continue;
            };
            if plan
                .paused_consumers
                .iter()
                .any(|p| p == handler.consumer())
            {
                tracing::warn!(
                    consumer = handler.consumer(),
                    "consumer paused; its queue keeps filling"
                );
                continue;
            }
            for _ in 0..plan.consumers.max(1) {
                let status = Supervised::new(format!("consumer {}", handler.consumer()));
                supervised.push(status.clone());
                let (transport, db, handler, stop) = (
                    plan.transport.clone(),
                    db.clone(),
                    handler.clone(),
                    shutdown.clone(),
                );
                tasks.push(tokio::spawn(supervise(
                    status,
                    shutdown.clone(),
                    move || {
                        transport
                            .clone()
                            .consume(db.clone(), handler.clone(), stop.clone())
                    },
                )));
            }
        }

        let probe = HostProbe {
            dbs: plan
                .members
                .iter()
                .map(|m| (m.service.name(), m.db.clone()))
                .collect(),
            transport: plan.transport.clone(),
            breakers,
            supervised,
        };
        let named_dbs: Vec<(&'static str, Db)> = plan
            .members
            .iter()
            .map(|m| (m.service.name(), m.db.clone()))
            .collect();
        let consumers: Vec<String> = plan
            .members
            .iter()
            .filter(|m| !m.service.consumes().is_empty())
            .map(|m| m.service.name().to_owned())
            .collect();
        service_gauges.push(Arc::new(gauges::HostGauges {
            dbs: named_dbs.clone(),
            breakers: named_breakers.clone(),
            transport: plan.transport.clone(),
            consumers: consumers.clone(),
        }));
        router = router
            .merge(health::router(Arc::new(probe)))
            .merge(agora_platform::metrics::router(service_gauges))
            .merge(status::router(status::Members {
                dbs: Arc::new(named_dbs),
                breakers: Arc::new(named_breakers),
            }));
        if plan.operator_routes {
            let queues = plan.transport.clone().dead_letters(consumers.clone());
            router = router
                .merge(crate::admin::dead_letter_router(queues))
                .merge(queue_router(plan.transport.clone(), consumers));
        }
        let router = edge(
            router.fallback(not_found_fallback),
            &plan.limits,
            plan.verifier.clone(),
            plan.web,
        );
        let listener = TcpListener::bind(&plan.listen).await?;
        Ok(Host {
            listener,
            router,
            limits: plan.limits,
            shutdown,
            tasks,
            transport: plan.transport,
            dbs: plan.members.into_iter().map(|m| m.db).collect(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` resolves, then stops the background work after
    /// its current batch, closes storage and the transport. Whatever is
    /// still queued is durable and is picked up by the next start.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let token = self.shutdown.clone();
        let served = serve(self.listener, self.router, &self.limits, async move {
            stop.await;
            token.cancel();
        })
        .await;
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        for db in &self.dbs {
            db.close().await;
        }
        // After the relays have stopped: closing the publishing connection
        // here, not at runtime teardown, ends it cleanly on both sides.
        self.transport.close().await;
        served
    }
}

/// The layers every process kind serves behind, in one place: the body
/// limit, the bearer token's verification, request metrics and tracing
/// (a span per request, continuing the caller's `traceparent`), and
/// (outermost) the listener's limits. With `web`, the storefront and the
/// console too (the embedded app and the gateway: what users open), and
/// GraphQL, which call the API router in-process, behind its token
/// verification; the API's OpenAPI document with Swagger UI, and the
/// events' AsyncAPI document with their JSON Schemas.
pub fn edge(router: Router, limits: &Limits, verifier: Arc<Verifier>, web: bool) -> Router {
    let verified = axum::middleware::from_fn_with_state(verifier, authenticate);
    let api = router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(verified.clone());
    let router = match web {
        true => agora_web::router(api.clone(), crate::audit::for_console(STUCK_AFTER_SECS))
            .merge(
                agora_graphql::router(api.clone())
                    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                    .layer(verified),
            )
            .merge(crate::openapi::router())
            .merge(crate::asyncapi::router())
            .merge(api),
        false => api,
    };
    let observed = router
        .layer(axum::middleware::from_fn(
            agora_platform::metrics::observe_http,
        ))
        .layer(crate::trace::http_trace());
    agora_platform::server::limited(observed, limits)
}

/// An order not final after this long is stuck, for the console's audit
/// (as for `agora audit` by default).
const STUCK_AFTER_SECS: i64 = 120;

/// Serves `router` (already behind [`edge`]) until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    agora_platform::server::serve(listener, router, limits, stop).await?;
    Ok(())
}

/// A member's sweeps: its own, vacuum where the server does not, and the
/// retention of what only grows.
fn sweeps(
    db: &Db,
    keep: &Keep,
    idempotency_ttl: Duration,
    parts: &Parts,
) -> Vec<Arc<dyn Periodic>> {
    let mut tasks = parts.periodic.clone();
    // It finds out at its first pass whether the server vacuums by itself.
    tasks.push(Arc::new(Vacuum::new(db.clone())));
    let keep = Keep {
        idempotency_keys: idempotency_ttl,
        ..keep.clone()
    };
    tasks.push(Arc::new(Retention::new(
        db.clone(),
        keep,
        parts.handler.as_ref().map(|h| h.consumer()),
        parts.records.clone(),
    )));
    tasks
}

/// Secrets an earlier release kept in clear in the outbox are masked once,
/// at start.
async fn mask_kept_secrets(db: Db) {
    if let Err(e) = outbox::mask_kept_secrets(&db).await {
        tracing::warn!(error = %e, "could not mask the secrets an earlier release kept");
    }
}

/// Readiness of a host: each member's storage, the transport, the breakers
/// (which degrade, never make it unready) and the supervised consumers.
struct HostProbe {
    dbs: Vec<(&'static str, Db)>,
    transport: Arc<dyn Transport>,
    breakers: Vec<Arc<Breaker>>,
    supervised: Vec<Arc<Supervised>>,
}

#[async_trait]
impl Probe for HostProbe {
    async fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for (name, db) in &self.dbs {
            let result = db.ping().await.map_err(|e| e.to_string());
            checks.push(Check::new(format!("{name}-db"), result));
        }
        let transport = self.transport.check().await;
        checks.push(Check::new(self.transport.kind().into(), transport));
        checks.extend(self.breakers.iter().map(|b| Check::breaker(b)));
        checks.extend(self.supervised.iter().map(|s| Check::supervised(s)));
        checks
    }
}

#[derive(Clone)]
struct Queues {
    transport: Arc<dyn Transport>,
    consumers: Vec<String>,
}

pub fn queue_router(transport: Arc<dyn Transport>, consumers: Vec<String>) -> Router {
    Router::new()
        .route("/api/v1/admin/queues", get(queue_depths))
        .with_state(Queues {
            transport,
            consumers,
        })
}

#[derive(Serialize, utoipa::ToSchema)]
struct QueueDepth {
    service: String,
    /// Events waiting (on RabbitMQ: ready, not yet delivered).
    depth: i64,
}

/// Events waiting per consuming service (operators).
#[utoipa::path(get, path = "/api/v1/admin/queues", tag = "operations",
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "Each consuming service's queue", body = Vec<QueueDepth>),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn queue_depths(State(q): State<Queues>, _: Operator) -> Result<impl IntoResponse, ApiError> {
    let depths = q.transport.queue_depths(&q.consumers).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read the queue depths");
        ApiError::unavailable("the queues are unavailable; try again")
    })?;
    let depths: Vec<QueueDepth> = depths
        .into_iter()
        .map(|(service, depth)| QueueDepth { service, depth })
        .collect();
    Ok(Json(depths))
}

/// This module's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(paths(queue_depths), components(schemas(QueueDepth)))]
pub struct ApiDoc;
