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

use agora_cart::Carts;
use agora_catalog::{Catalog, CatalogClient};
use agora_inventory::Inventory;
use agora_notification::Notifications;
use agora_order::Orders;
use agora_payment::{Gateway, Payments};
use agora_platform::bus::{EmbeddedBus, Publisher};
use agora_platform::consumer::{self, EventHandler, RetryPolicy};
use agora_platform::db::Migration;
use agora_platform::http::{not_found_fallback, ApiError, Json, MAX_BODY_BYTES};
use agora_platform::{outbox, Db};
use agora_shipping::Shipping;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

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
    /// Consumers not started: their queues fill up durably. Tests use this to
    /// hold a saga at a chosen step; a restart without it resumes them.
    pub paused_consumers: Vec<String>,
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
            paused_consumers: Vec::new(),
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
    pub bus: Arc<EmbeddedBus>,
    pub dbs: Vec<ServiceDb>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.data_dir)?;
        let open = |name: &'static str, migrations: &'static [Migration]| {
            let path = config.data_dir.join(format!("{name}.db"));
            let sync_full = config.synchronous_full;
            async move {
                let db = Db::open_sqlite(&path, sync_full)?;
                db.migrate(&[outbox::MIGRATIONS, migrations]).await?;
                anyhow::Ok(ServiceDb { name, db })
            }
        };
        let catalog_db = open(agora_catalog::NAME, agora_catalog::MIGRATIONS).await?;
        let inventory_db = open(agora_inventory::NAME, agora_inventory::MIGRATIONS).await?;
        let cart_db = open(agora_cart::NAME, agora_cart::MIGRATIONS).await?;
        let order_db = open(agora_order::NAME, agora_order::MIGRATIONS).await?;
        let payment_db = open(agora_payment::NAME, agora_payment::MIGRATIONS).await?;
        let shipping_db = open(agora_shipping::NAME, agora_shipping::MIGRATIONS).await?;
        let notification_db =
            open(agora_notification::NAME, agora_notification::MIGRATIONS).await?;

        let bus =
            EmbeddedBus::open(&config.data_dir.join("bus.db"), config.duplicate_delivery).await?;

        let catalog = Catalog::new(catalog_db.db.clone());
        let catalog_client: Arc<dyn CatalogClient> = Arc::new(catalog.clone());
        let inventory = Inventory::new(inventory_db.db.clone());
        let carts = Carts::new(cart_db.db.clone(), catalog_client.clone());
        let orders = Orders::new(order_db.db.clone(), catalog_client);
        let gateway = Gateway {
            decline_above: config.decline_above,
        };
        let payments = Payments::new(payment_db.db.clone(), gateway.clone());
        let shipping = Shipping::new(shipping_db.db.clone());
        let notifications = Notifications::new(notification_db.db.clone());

        let consumers: Vec<(Db, Arc<dyn EventHandler>)> = vec![
            (
                inventory_db.db.clone(),
                Arc::new(agora_inventory::handlers::Handler),
            ),
            (
                order_db.db.clone(),
                Arc::new(agora_order::handlers::Handler {
                    orders: orders.clone(),
                }),
            ),
            (
                payment_db.db.clone(),
                Arc::new(agora_payment::handlers::Handler { gateway }),
            ),
            (
                shipping_db.db.clone(),
                Arc::new(agora_shipping::handlers::Handler),
            ),
            (
                notification_db.db.clone(),
                Arc::new(agora_notification::handlers::Handler),
            ),
        ];
        // Every queue is bound before any relay publishes, so an event left in
        // an outbox by the previous run is routed to all of its subscribers.
        for (_, handler) in &consumers {
            bus.bind(handler.consumer(), handler.routing_keys());
        }

        let dbs = vec![
            catalog_db,
            inventory_db,
            cart_db,
            order_db,
            payment_db,
            shipping_db,
            notification_db,
        ];
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let publisher: Arc<dyn Publisher> = bus.clone();
        for service in &dbs {
            tasks.push(tokio::spawn(outbox::run_relay(
                service.db.clone(),
                publisher.clone(),
                shutdown.clone(),
            )));
        }
        for (db, handler) in consumers {
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
            tasks.push(tokio::spawn(consumer::run_embedded(
                bus.clone(),
                db,
                handler,
                config.retry.clone(),
                shutdown.clone(),
            )));
        }

        if config.seed_demo {
            let seeded = catalog
                .seed_demo()
                .await
                .map_err(|e| anyhow::anyhow!(e.detail))?;
            if seeded > 0 {
                tracing::info!(products = seeded, "seeded the demo catalog");
            }
        }

        let admin = Admin {
            bus: bus.clone(),
            dbs: dbs.clone(),
        };
        let router = Router::new()
            .merge(agora_catalog::api::router(catalog))
            .merge(agora_inventory::api::router(inventory))
            .merge(agora_cart::api::router(carts))
            .merge(agora_order::api::router(orders))
            .merge(agora_payment::api::router(payments))
            .merge(agora_shipping::api::router(shipping))
            .merge(agora_notification::api::router(notifications))
            .merge(admin_router(admin))
            .fallback(not_found_fallback)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(TraceLayer::new_for_http());

        let listener = TcpListener::bind(&config.listen).await?;
        Ok(Application {
            listener,
            router,
            shutdown,
            tasks,
            bus,
            dbs,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` resolves, then stops the relays and consumers
    /// after their current batch. Whatever is still queued is durable and is
    /// picked up by the next start.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let token = self.shutdown.clone();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                stop.await;
                token.cancel();
            })
            .await;
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        for service in &self.dbs {
            service.db.close().await;
        }
        served?;
        Ok(())
    }
}

#[derive(Clone)]
struct Admin {
    bus: Arc<EmbeddedBus>,
    dbs: Vec<ServiceDb>,
}

fn admin_router(admin: Admin) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/v1/admin/dead-letters", get(dead_letters))
        .route("/api/v1/admin/queues", get(queues))
        .with_state(admin)
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: Vec<Check>,
}

#[derive(Serialize)]
struct Check {
    component: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// 200 when every service's storage and the bus answer, else 503 naming
/// what does not.
async fn ready(State(admin): State<Admin>) -> impl IntoResponse {
    let mut checks = Vec::new();
    for service in &admin.dbs {
        let result = service.db.ping().await;
        checks.push(Check {
            component: format!("{}-db", service.name),
            ok: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        });
    }
    let bus = admin.bus.ping().await;
    checks.push(Check {
        component: "bus".into(),
        ok: bus.is_ok(),
        error: bus.err().map(|e| e.to_string()),
    });
    let all_ok = checks.iter().all(|c| c.ok);
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if all_ok { "ready" } else { "not ready" },
        checks,
    };
    (status, Json(body))
}

#[derive(Deserialize)]
struct DeadLetterFilter {
    service: Option<String>,
}

async fn dead_letters(
    State(admin): State<Admin>,
    agora_platform::http::Query(filter): agora_platform::http::Query<DeadLetterFilter>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        admin.bus.dead_letters(filter.service.as_deref()).await?,
    ))
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
