//! The embedded mode: every service in one process, one SQLite file per
//! service, the embedded durable bus, one HTTP listener.
//!
//! [`Application::build`] opens and migrates storage, binds every queue,
//! starts the outbox relays and consumers and binds the listener (port 0 in
//! tests); [`Application::run_until_stopped`] serves until the shutdown
//! future resolves, then lets the background work finish its current batch.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_catalog::Catalog;
use agora_inventory::{Inventory, StockCheck};
use agora_payment::Gateway;
use agora_platform::breaker::Breaker;
use agora_platform::bus::{EmbeddedBus, Publisher};
use agora_platform::consumer::{self, RetryPolicy};
use agora_platform::http::{not_found_fallback, ApiError, Json, MAX_BODY_BYTES};
use agora_platform::retention::Keep;
use agora_platform::server::Limits;
use agora_platform::supervise::{supervise, Supervised};
use agora_platform::{outbox, periodic, Db};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::components::{component, migrations, seed_demo, Deps, SERVICES};

/// Settings of the embedded mode.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    /// Payments above this amount (minor units) are declined.
    pub decline_above: i64,
    /// Seed the demo catalog when the catalog is empty.
    pub seed_demo: bool,
    /// Deliver every event twice (proves the consumers are idempotent).
    pub duplicate_delivery: bool,
    /// `synchronous=FULL`: survive power loss too, at some cost in speed.
    pub synchronous_full: bool,
    pub retry: RetryPolicy,
    /// Deadline of each saga step.
    pub step_timeout: Duration,
    /// How long inventory holds a reservation at most.
    pub reservation_ttl: Duration,
    /// The order service's fast stock check before accepting an order.
    pub stock_precheck: bool,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// Consumers not started: their queues fill up durably. Tests use this to
    /// hold a saga at a chosen step; a restart without it resumes them.
    pub paused_consumers: Vec<String>,
    /// The listener's limits (timeouts, requests in flight, per client).
    pub limits: Limits,
    /// Clients waiting at once in `GET /orders/{id}?wait_ms`; past it, the
    /// order is answered as it is, at once.
    pub max_waiters: usize,
    /// How long what only grows is kept (idempotency keys: see
    /// `idempotency_ttl`).
    pub keep: Keep,
    /// Dead letters kept per service.
    pub dead_letter_max: u32,
}

impl Config {
    pub fn new(listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: listen.into(),
            data_dir: data_dir.into(),
            decline_above: Gateway::default().decline_above,
            seed_demo: true,
            duplicate_delivery: false,
            synchronous_full: false,
            retry: RetryPolicy::default(),
            step_timeout: Duration::from_secs(30),
            reservation_ttl: Duration::from_secs(600),
            stock_precheck: true,
            idempotency_ttl: agora_platform::idempotency::DEFAULT_TTL,
            paused_consumers: Vec::new(),
            limits: Limits::default(),
            max_waiters: agora_order::DEFAULT_MAX_WAITERS,
            keep: Keep::default(),
            dead_letter_max: agora_platform::dead_letters::DEFAULT_MAX,
        }
    }
}

/// One service's storage, for readiness checks and the audit.
#[derive(Clone)]
pub struct ServiceDb {
    pub name: &'static str,
    pub db: Db,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    limits: Limits,
    pub bus: Arc<EmbeddedBus>,
    pub dbs: Vec<ServiceDb>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.data_dir)?;
        let mut dbs = Vec::new();
        for name in SERVICES {
            let db = Db::open_sqlite(
                &config.data_dir.join(format!("{name}.db")),
                config.synchronous_full,
            )?;
            db.migrate(&migrations(name)?).await?;
            dbs.push(ServiceDb { name, db });
        }
        let bus =
            EmbeddedBus::open(&config.data_dir.join("bus.db"), config.duplicate_delivery).await?;
        bus.keep_dead_letters(config.dead_letter_max);
        let catalog_db = dbs[0].db.clone();
        let stock_check: Option<Arc<dyn StockCheck>> = config.stock_precheck.then(|| {
            let inventory_db = dbs[1].db.clone();
            Arc::new(Inventory::new(inventory_db, config.reservation_ttl)) as Arc<dyn StockCheck>
        });
        let deps = Deps {
            max_waiters: config.max_waiters,
            catalog: Arc::new(Catalog::new(catalog_db.clone())),
            stock_check,
            payment_gateway: Gateway {
                decline_above: config.decline_above,
            },
            step_timeout: config.step_timeout,
            reservation_ttl: config.reservation_ttl,
            idempotency_ttl: config.idempotency_ttl,
            keep: config.keep.clone(),
        };
        let components = dbs
            .iter()
            .map(|s| component(s.name, s.db.clone(), &deps))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Every queue is bound before any relay publishes, so an event left in
        // an outbox by the previous run is routed to all of its subscribers.
        for handler in components.iter().filter_map(|c| c.handler.as_ref()) {
            bus.bind(handler.consumer(), handler.routing_keys());
        }

        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let publisher: Arc<dyn Publisher> = bus.clone();
        let mut router = Router::new();
        let breakers: Vec<_> = components.iter().flat_map(|c| c.breakers.clone()).collect();
        let mut supervised = Vec::new();
        for c in components {
            tasks.push(tokio::spawn(outbox::run_relay(
                c.db.clone(),
                publisher.clone(),
                Duration::ZERO,
                shutdown.clone(),
            )));
            router = router.merge(c.router);
            for task in c.periodic {
                tasks.push(tokio::spawn(periodic::run_periodic(task, shutdown.clone())));
            }
            for task in c.background {
                tasks.push(tokio::spawn(task(shutdown.clone())));
            }
            let Some(handler) = c.handler else { continue };
            if config
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
            let status = Supervised::new(format!("consumer {}", handler.consumer()));
            supervised.push(status.clone());
            let (bus, db, retry, stop) =
                (bus.clone(), c.db, config.retry.clone(), shutdown.clone());
            tasks.push(tokio::spawn(supervise(
                status,
                shutdown.clone(),
                move || {
                    consumer::run_embedded(
                        bus.clone(),
                        db.clone(),
                        handler.clone(),
                        retry.clone(),
                        stop.clone(),
                    )
                },
            )));
        }
        if config.seed_demo {
            seed_demo(&catalog_db).await?;
        }

        let admin = Admin {
            bus: bus.clone(),
            dbs: dbs.clone(),
            breakers,
            supervised,
        };
        let router = router
            .merge(admin_router(admin))
            .merge(crate::admin::dead_letter_router(bus.clone()))
            .fallback(not_found_fallback)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(crate::trace::http_trace());

        let listener = TcpListener::bind(&config.listen).await?;
        Ok(Application {
            listener,
            router,
            shutdown,
            tasks,
            limits: config.limits.clone(),
            bus,
            dbs,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` resolves; see [`serve_until`].
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let dbs = self.dbs.iter().map(|s| s.db.clone()).collect();
        serve_until(
            self.listener,
            self.router,
            &self.limits,
            self.shutdown,
            self.tasks,
            dbs,
            stop,
        )
        .await
    }
}

/// Serves until `stop` resolves, then stops the background tasks after their
/// current batch and closes storage. Whatever is still queued is durable and
/// is picked up by the next start.
pub(crate) async fn serve_until(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    dbs: Vec<Db>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = shutdown.clone();
    let router = agora_platform::server::limited(router, limits);
    let served = agora_platform::server::serve(listener, router, limits, async move {
        stop.await;
        token.cancel();
    })
    .await;
    shutdown.cancel();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    for db in &dbs {
        db.close().await;
    }
    served?;
    Ok(())
}

#[derive(Clone)]
struct Admin {
    bus: Arc<EmbeddedBus>,
    dbs: Vec<ServiceDb>,
    breakers: Vec<Arc<Breaker>>,
    supervised: Vec<Arc<Supervised>>,
}

fn admin_router(admin: Admin) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/admin/queues", get(queues))
        .with_state(admin)
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
pub(crate) struct Readiness {
    status: &'static str,
    checks: Vec<Check>,
}

/// 200 when every check is ok, else 503; the body names each check.
impl IntoResponse for Readiness {
    fn into_response(self) -> axum::response::Response {
        let status = if self.status == "ready" {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(self)).into_response()
    }
}

impl Readiness {
    pub(crate) fn new(checks: Vec<Check>) -> Self {
        let ready = checks.iter().all(|c| c.ok);
        Readiness {
            status: if ready { "ready" } else { "not ready" },
            checks,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Check {
    pub component: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A circuit breaker's state: an open breaker degrades, it does not
    /// make the service unready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// How often a supervised task (a consumer) was started again after a
    /// panic; it is unready only while it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

impl Check {
    /// A check of `component`; a failure's detail (an address, a driver's
    /// message) goes to the log, and the public answer says only that it
    /// does not answer.
    pub(crate) fn new(component: String, result: Result<(), String>) -> Check {
        let error = result.err().map(|detail| {
            tracing::warn!(component = %component, error = %detail, "readiness check failed");
            "does not answer".to_owned()
        });
        Check {
            component,
            ok: error.is_none(),
            error,
            state: None,
            restarts: None,
        }
    }

    pub(crate) fn breaker(breaker: &Breaker) -> Check {
        Check {
            component: format!("breaker {}", breaker.name()),
            ok: true,
            error: None,
            state: Some(breaker.state()),
            restarts: None,
        }
    }

    pub(crate) fn supervised(task: &Supervised) -> Check {
        let running = task.is_running();
        Check {
            component: task.name().to_owned(),
            ok: running,
            error: (!running).then(|| "restarting after a panic".to_owned()),
            state: None,
            restarts: Some(task.restarts()),
        }
    }
}

/// 200 when every service's storage and the bus answer, else 503 naming
/// what does not.
async fn ready(State(admin): State<Admin>) -> impl IntoResponse {
    let mut checks = Vec::new();
    for service in &admin.dbs {
        let result = service.db.ping().await;
        checks.push(Check::new(
            format!("{}-db", service.name),
            result.map_err(|e| e.to_string()),
        ));
    }
    let bus = admin.bus.ping().await;
    checks.push(Check::new("bus".into(), bus.map_err(|e| e.to_string())));
    checks.extend(admin.breakers.iter().map(|b| Check::breaker(b)));
    checks.extend(admin.supervised.iter().map(|s| Check::supervised(s)));
    Readiness::new(checks)
}

async fn queues(State(admin): State<Admin>) -> Result<impl IntoResponse, ApiError> {
    let depths: Vec<serde_json::Value> = admin
        .bus
        .queue_depths()
        .await?
        .into_iter()
        .map(|(service, depth)| serde_json::json!({ "service": service, "depth": depth }))
        .collect();
    Ok(Json(depths))
}
