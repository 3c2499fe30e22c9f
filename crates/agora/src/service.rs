//! The distributed mode: `agora service <name>` runs one service in its own
//! process, on its own PostgreSQL database (created if missing, migrated at
//! start), talking to the others over RabbitMQ. Start several of one service
//! for competing consumers.

use std::sync::Arc;
use std::time::Duration;

use agora_catalog::{Catalog, CatalogClient, HttpCatalog};
use agora_inventory::{HttpStockCheck, StockCheck};
use agora_payment::Gateway;
use agora_platform::amqp::{self, AmqpConfig, Broker, QueueType};
use agora_platform::breaker::Breaker;
use agora_platform::bus::Publisher;
use agora_platform::http::{not_found_fallback, Json, MAX_BODY_BYTES};
use agora_platform::supervise::{supervise, Supervised};
use agora_platform::{outbox, periodic, Db};
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{serve_until, Check, Readiness};
use crate::components::{component, migrations, seed_demo, Deps};
use crate::limits::{LimitArgs, RetentionArgs};
use agora_platform::server::Limits;

#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    /// catalog, inventory, cart, order, payment, shipping or notification.
    pub name: String,
    /// Address of this service's HTTP listener.
    #[arg(long, env = "AGORA_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// This service's own PostgreSQL database (created if missing).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// A file holding the database password (a Docker or Kubernetes
    /// secret), put into --database-url.
    #[arg(long, env = "DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<std::path::PathBuf>,
    /// A file holding the broker password, put into --amqp-url.
    #[arg(long, env = "AMQP_PASSWORD_FILE")]
    pub amqp_password_file: Option<std::path::PathBuf>,
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Prefix of every exchange and queue (isolates deployments and tests).
    #[arg(long, env = "AGORA_AMQP_PREFIX", default_value = "agora.")]
    pub amqp_prefix: String,
    /// Unacknowledged messages one consumer may hold.
    #[arg(long, env = "AGORA_PREFETCH", default_value_t = 128)]
    pub prefetch: u16,
    /// classic or quorum (classic: see ARCHITECTURE.md for why).
    #[arg(long, env = "AGORA_QUEUE_TYPE", default_value = "classic")]
    pub queue_type: QueueType,
    /// Consumers of this service's queue inside this process. One: on a
    /// busy machine fewer, larger batches beat parallel small ones (more
    /// throughput, see docs/performance.md); scale out with instances.
    #[arg(long, env = "AGORA_CONSUMERS", default_value_t = 1)]
    pub consumers: usize,
    /// How long a consumer waits for more deliveries to join a batch (one
    /// transaction and one ack for all); bounds the latency each hop adds.
    #[arg(long, env = "AGORA_CONSUMER_LINGER_MS", default_value_t = agora_platform::amqp::DEFAULT_BATCH_LINGER_MS)]
    pub consumer_linger_ms: u64,
    /// Attempts before a failing event goes to the dead-letter queue.
    #[arg(long, env = "AGORA_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,
    /// Where the order service checks stock before accepting an order.
    #[arg(
        long,
        env = "AGORA_INVENTORY_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub inventory_url: String,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    #[arg(long, env = "AGORA_RETRY_BASE_MS", default_value_t = 100)]
    pub retry_base_ms: u64,
    /// Where order and cart ask the catalog for prices.
    #[arg(
        long,
        env = "AGORA_CATALOG_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub catalog_url: String,
    #[arg(long, env = "AGORA_PAYMENT_DECLINE_ABOVE", default_value_t = 1_000_000)]
    pub payment_decline_above: i64,
    /// PostgreSQL connections of this process.
    #[arg(long, env = "AGORA_DB_CONNECTIONS", default_value_t = 10)]
    pub db_connections: u32,
    /// Seconds each saga step may take before the order is cancelled (order).
    #[arg(long, env = "AGORA_STEP_TIMEOUT_SECS", default_value_t = 30)]
    pub step_timeout_secs: u64,
    /// Seconds a stock reservation is held at most (inventory).
    #[arg(long, env = "AGORA_RESERVATION_TTL_SECS", default_value_t = 600)]
    pub reservation_ttl_secs: u64,
    /// Seconds an Idempotency-Key is remembered (order, cart).
    #[arg(long, env = "AGORA_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    pub idempotency_ttl_secs: u64,
    /// Milliseconds the outbox relay waits for more events before publishing.
    #[arg(long, env = "AGORA_RELAY_LINGER_MS", default_value_t = 5)]
    pub relay_linger_ms: u64,
    /// Do not seed the demo catalog (catalog only).
    #[arg(long, env = "AGORA_NO_SEED")]
    pub no_seed: bool,
    /// Clients waiting at once in `GET /orders/{id}?wait_ms` (order); past
    /// it, the order is answered as it is, at once.
    #[arg(long, env = "AGORA_MAX_WAITERS", default_value_t = agora_order::DEFAULT_MAX_WAITERS)]
    pub max_waiters: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

pub struct ServiceApp {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    db: Db,
    broker: Arc<Broker>,
    limits: Limits,
}

#[derive(Clone)]
struct Health {
    name: &'static str,
    db: Db,
    broker: Arc<Broker>,
    breakers: Vec<Arc<Breaker>>,
    supervised: Vec<Arc<Supervised>>,
}

impl ServiceApp {
    pub async fn build(args: ServiceArgs) -> anyhow::Result<ServiceApp> {
        let migrations = migrations(&args.name)?;
        let database_url = crate::secrets::url_with_password_file(
            &args.database_url,
            args.database_password_file.as_deref(),
        )?;
        let amqp_url = crate::secrets::url_with_password_file(
            &args.amqp_url,
            args.amqp_password_file.as_deref(),
        )?;
        let db = Db::connect_postgres(&database_url, args.db_connections).await?;
        db.migrate(&migrations).await?;
        let mut breakers = Vec::new();
        let catalog: Arc<dyn CatalogClient> = if args.name == agora_catalog::NAME {
            Arc::new(Catalog::new(db.clone()))
        } else {
            let http = HttpCatalog::new(&args.catalog_url);
            if matches!(args.name.as_str(), agora_order::NAME | agora_cart::NAME) {
                breakers.push(http.breaker());
            }
            Arc::new(http)
        };
        let stock_check: Option<Arc<dyn StockCheck>> = (args.name == agora_order::NAME)
            .then(|| Arc::new(HttpStockCheck::new(&args.inventory_url)) as Arc<dyn StockCheck>);
        let deps = Deps {
            max_waiters: args.max_waiters,
            catalog,
            stock_check,
            payment_gateway: Gateway {
                decline_above: args.payment_decline_above,
            },
            step_timeout: Duration::from_secs(args.step_timeout_secs),
            reservation_ttl: Duration::from_secs(args.reservation_ttl_secs),
            idempotency_ttl: Duration::from_secs(args.idempotency_ttl_secs),
            keep: args
                .retention
                .keep(Duration::from_secs(args.idempotency_ttl_secs)),
        };
        let c = component(&args.name, db.clone(), &deps)?;

        let mut amqp_config = AmqpConfig::new(&amqp_url);
        amqp_config.prefix = args.amqp_prefix.clone();
        amqp_config.prefetch = args.prefetch;
        amqp_config.batch_linger = Duration::from_millis(args.consumer_linger_ms);
        amqp_config.queue_type = args.queue_type;
        amqp_config.retry.max_attempts = args.max_attempts.max(1);
        amqp_config.retry.base_delay = Duration::from_millis(args.retry_base_ms);
        amqp_config.consumers = crate::components::queues_fed_by(c.name);
        amqp_config.dead_letter_max = args.retention.dead_letter_max;
        let broker = Broker::new(amqp_config);

        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let publisher: Arc<dyn Publisher> = broker.clone();
        let linger = Duration::from_millis(args.relay_linger_ms);
        tasks.push(tokio::spawn(outbox::run_relay(
            db.clone(),
            publisher,
            linger,
            shutdown.clone(),
        )));
        for task in &c.periodic {
            tasks.push(tokio::spawn(periodic::run_periodic(
                task.clone(),
                shutdown.clone(),
            )));
        }
        for task in c.background {
            tasks.push(tokio::spawn(task(shutdown.clone())));
        }
        let mut supervised = Vec::new();
        if let Some(handler) = &c.handler {
            for _ in 0..args.consumers.max(1) {
                let status = Supervised::new(format!("consumer {}", handler.consumer()));
                supervised.push(status.clone());
                let (broker, db, handler, stop) = (
                    broker.clone(),
                    db.clone(),
                    handler.clone(),
                    shutdown.clone(),
                );
                tasks.push(tokio::spawn(supervise(
                    status,
                    shutdown.clone(),
                    move || {
                        amqp::run_consumer(
                            broker.clone(),
                            db.clone(),
                            handler.clone(),
                            stop.clone(),
                        )
                    },
                )));
            }
        }
        if c.name == agora_catalog::NAME && !args.no_seed {
            seed_demo(&db).await?;
        }
        let health = Health {
            name: c.name,
            db: db.clone(),
            broker: broker.clone(),
            breakers: c.breakers.iter().cloned().chain(breakers).collect(),
            supervised,
        };
        let router = c
            .router
            .merge(
                Router::new()
                    .route(
                        "/health",
                        get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
                    )
                    .route("/ready", get(ready))
                    .with_state(health),
            )
            .fallback(not_found_fallback)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(crate::trace::http_trace());
        let listener = TcpListener::bind(&args.listen).await?;
        Ok(ServiceApp {
            name: c.name,
            listener,
            router,
            shutdown,
            tasks,
            db,
            broker,
            limits: args.limits.service_limits(),
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub async fn run_until_stopped(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        serve_until(
            self.listener,
            self.router,
            &self.limits,
            self.shutdown,
            self.tasks,
            vec![self.db],
            stop,
        )
        .await?;
        // After the relay has stopped: closing the publishing connection
        // here, not at runtime teardown, ends it cleanly on both sides.
        self.broker.close().await;
        Ok(())
    }
}

/// 200 when the database and the broker answer, else 503 naming what does not.
async fn ready(State(health): State<Health>) -> impl IntoResponse {
    let db = health.db.ping().await;
    let broker = health.broker.is_ready().await;
    let mut checks = vec![
        Check::new(format!("{}-db", health.name), db.map_err(|e| e.to_string())),
        Check::new(
            "broker".into(),
            if broker {
                Ok(())
            } else {
                Err("not connected".into())
            },
        ),
    ];
    checks.extend(health.breakers.iter().map(|b| Check::breaker(b)));
    checks.extend(health.supervised.iter().map(|s| Check::supervised(s)));
    Readiness::new(checks)
}
