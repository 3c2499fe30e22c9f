//! The contract every service crate fulfils, the same way: its name, the
//! paths it owns, its tables, the events it consumes, what it needs from
//! other services and what it offers them, and how it is built on its own
//! storage. A host (one process for all, or one per service) composes
//! services only through this contract, so running mode and storage backend
//! are values the host chooses, never code paths inside a service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::Extensions;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::breaker::Breaker;
use crate::consumer::EventHandler;
use crate::db::{Db, Migration};
use crate::periodic::Periodic;
use crate::retention::{Keep, Records};

/// Long-running work of a service (the order service's notice listener),
/// started with the token it stops on.
pub type Background =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What a built service is made of, for the host to run.
pub struct Parts {
    pub router: Router,
    /// `None` for a service that consumes nothing (catalog).
    pub handler: Option<Arc<dyn EventHandler>>,
    /// Sweeps on a period (order deadlines, reservation expiry).
    pub periodic: Vec<Arc<dyn Periodic>>,
    /// Circuit breakers around its synchronous calls, shown on `/ready`.
    pub breakers: Vec<Arc<Breaker>>,
    pub background: Vec<Background>,
    /// Its own records that only grow, pruned by age past the retention.
    pub records: Vec<Records>,
    /// Its own gauges, read at each scrape of `/metrics` (orders by state).
    pub gauges: Vec<Arc<dyn crate::metrics::Gauges>>,
}

impl Parts {
    /// A service that only serves `router`; the rest is added with the
    /// `with_*` methods.
    pub fn new(router: Router) -> Parts {
        Parts {
            router,
            handler: None,
            periodic: Vec::new(),
            breakers: Vec::new(),
            background: Vec::new(),
            records: Vec::new(),
            gauges: Vec::new(),
        }
    }

    pub fn with_gauges(mut self, gauges: impl crate::metrics::Gauges) -> Parts {
        self.gauges.push(Arc::new(gauges));
        self
    }

    pub fn with_handler(mut self, handler: impl EventHandler) -> Parts {
        self.handler = Some(Arc::new(handler));
        self
    }

    pub fn with_periodic(mut self, task: impl Periodic) -> Parts {
        self.periodic.push(Arc::new(task));
        self
    }

    pub fn with_breakers(mut self, breakers: impl IntoIterator<Item = Arc<Breaker>>) -> Parts {
        self.breakers.extend(breakers);
        self
    }

    pub fn with_background<F, Fut>(mut self, task: F) -> Parts
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background
            .push(Box::new(move |shutdown| Box::pin(task(shutdown))));
        self
    }

    pub fn with_records(mut self, records: Vec<Records>) -> Parts {
        self.records = records;
        self
    }
}

/// The deployment's settings, the same values whichever mode runs: each
/// service reads those it has a use for.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Deadline of each saga step (order).
    pub step_timeout: Duration,
    /// How long inventory holds a reservation at most.
    pub reservation_ttl: Duration,
    /// How long idempotency keys are remembered (order, cart).
    pub idempotency_ttl: Duration,
    /// Clients waiting at once for an order to end (order).
    pub max_waiters: usize,
    /// The order service's fast stock check before accepting an order.
    pub stock_check: bool,
    /// Payments above this amount (minor units) are declined.
    pub payment_decline_above: i64,
    /// Seed the demo catalog when the catalog is empty.
    pub seed_demo: bool,
    /// How long what only grows is kept.
    pub keep: Keep,
    /// How long an access token is valid (identity; and how long a
    /// superseded signing key keeps verifying).
    pub access_token_ttl: Duration,
}

/// Where another service is reached from this process.
pub enum Peer<'a> {
    /// In this process, on its own storage.
    Local(&'a Db),
    /// In another process, at this base URL.
    Remote(&'a str),
}

/// What the host gives a service to build on.
pub struct Context {
    /// The service's own storage, open and migrated.
    pub db: Db,
    pub settings: Settings,
    /// What the services it needs offered ([`Service::offer`]).
    peers: Extensions,
}

impl Context {
    pub fn new(db: Db, settings: Settings, peers: Extensions) -> Context {
        Context {
            db,
            settings,
            peers,
        }
    }

    /// What a needed service offered as `T` (an `Arc<dyn …Client>`); the
    /// host offers every need, so a missing one is a wiring error.
    pub fn peer<T: Clone + Send + Sync + 'static>(&self) -> anyhow::Result<T> {
        self.peers.get::<T>().cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "nothing offers {} to this service",
                std::any::type_name::<T>()
            )
        })
    }
}

/// One service of Agora.
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// Names its storage, its queue, its inbox rows and its process.
    fn name(&self) -> &'static str;

    /// The path prefixes it serves (`/api/v1/orders` serves
    /// `/api/v1/orders` and everything under it): how the gateway routes.
    fn paths(&self) -> &'static [&'static str];

    /// Its routes as an OpenAPI document (`api.rs`'s `#[derive(OpenApi)]`),
    /// joined with the others' into the one the binary serves.
    fn openapi(&self) -> utoipa::openapi::OpenApi {
        utoipa::openapi::OpenApi::default()
    }

    /// Its own tables (the platform's come first, from the host).
    fn migrations(&self) -> &'static [Migration];

    /// The routing keys of the events it consumes; none: it has no queue.
    fn consumes(&self) -> &'static [&'static str] {
        &[]
    }

    /// The services it calls synchronously (whose [`Service::offer`] it
    /// reads through [`Context::peer`]).
    fn needs(&self) -> &'static [&'static str] {
        &[]
    }

    /// Puts into `offers` how others reach it `at` a place: in-process or
    /// over HTTP.
    fn offer(&self, _at: Peer<'_>, _settings: &Settings, _offers: &mut Extensions) {}

    /// Builds it on `context.db` (open and migrated).
    async fn build(&self, context: &Context) -> anyhow::Result<Parts>;
}
