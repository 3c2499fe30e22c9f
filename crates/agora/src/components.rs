//! What each service is made of, for whichever mode composes it: its
//! migrations, its HTTP router and its event handler. The embedded mode
//! builds all seven on SQLite; `agora service <name>` builds one on
//! PostgreSQL. Both go through [`component`], so the two modes cannot drift.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agora_cart::Carts;
use agora_catalog::{Catalog, CatalogClient};
use agora_inventory::Inventory;
use agora_inventory::StockCheck;
use agora_notification::Notifications;
use agora_order::Orders;
use agora_payment::{Gateway, Payments};
use agora_platform::amqp::QueueSpec;
use agora_platform::breaker::Breaker;
use agora_platform::consumer::EventHandler;
use agora_platform::db::Migration;
use agora_platform::periodic::Periodic;
use agora_platform::retention::{self, Keep, Records, Retention};
use agora_platform::vacuum::Vacuum;
use agora_platform::{idempotency, outbox, Db};
use agora_shipping::Shipping;
use axum::Router;
use tokio_util::sync::CancellationToken;

/// Every service, in start order (the catalog first: others ask it prices).
pub const SERVICES: [&str; 7] = [
    agora_catalog::NAME,
    agora_inventory::NAME,
    agora_cart::NAME,
    agora_order::NAME,
    agora_payment::NAME,
    agora_shipping::NAME,
    agora_notification::NAME,
];

/// The consuming services and the routing keys of their queues: the one
/// list every process derives the broker topology from.
pub const CONSUMERS: [(&str, &[&str]); 6] = [
    (
        agora_inventory::NAME,
        agora_inventory::handlers::ROUTING_KEYS,
    ),
    (agora_cart::NAME, agora_cart::handlers::ROUTING_KEYS),
    (agora_order::NAME, agora_order::handlers::ROUTING_KEYS),
    (agora_payment::NAME, agora_payment::handlers::ROUTING_KEYS),
    (agora_shipping::NAME, agora_shipping::handlers::ROUTING_KEYS),
    (
        agora_notification::NAME,
        agora_notification::handlers::ROUTING_KEYS,
    ),
];

/// The services that consume events, and so have queues and dead letters.
pub fn consumer_names() -> Vec<String> {
    CONSUMERS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// The queues that take what `publisher` emits: each consumer bound to at
/// least one of its events, with all of that consumer's bindings.
pub fn queues_fed_by(publisher: &str) -> Vec<QueueSpec> {
    let emitted = agora_platform::events::routing_keys_emitted_by(publisher);
    CONSUMERS
        .iter()
        .filter(|(_, keys)| keys.iter().any(|k| emitted.contains(k)))
        .map(|(service, keys)| QueueSpec::new(service, keys))
        .collect()
}

/// One service, ready to be served and fed events.
pub struct Component {
    pub name: &'static str,
    pub db: Db,
    pub router: Router,
    /// `None` for a service that consumes nothing (catalog).
    pub handler: Option<Arc<dyn EventHandler>>,
    /// Background sweeps (order deadlines, reservation expiry, vacuum where
    /// the PostgreSQL server does not).
    pub periodic: Vec<Arc<dyn Periodic>>,
    /// Circuit breakers around its synchronous calls, shown on `/ready`.
    pub breakers: Vec<Arc<Breaker>>,
    /// Other long-running work (the order service's notice listener),
    /// each started with the token it stops on.
    pub background: Vec<Background>,
}

pub type Background =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What services need from outside themselves.
#[derive(Clone)]
pub struct Deps {
    /// How order and cart read prices: in-process or over HTTP.
    pub catalog: Arc<dyn CatalogClient>,
    /// The order service's fast stock check (none: off).
    pub stock_check: Option<Arc<dyn StockCheck>>,
    pub payment_gateway: Gateway,
    /// Deadline of each saga step.
    pub step_timeout: Duration,
    /// How long inventory holds a reservation at most.
    pub reservation_ttl: Duration,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// How long what only grows is kept (idempotency keys for
    /// `idempotency_ttl`).
    pub keep: Keep,
    /// Clients waiting at once for an order to end (order).
    pub max_waiters: usize,
}

/// The platform's tables and the service's own, in order.
pub fn migrations(name: &str) -> anyhow::Result<[&'static [Migration]; 4]> {
    let own = match name {
        agora_catalog::NAME => agora_catalog::MIGRATIONS,
        agora_inventory::NAME => agora_inventory::MIGRATIONS,
        agora_cart::NAME => agora_cart::MIGRATIONS,
        agora_order::NAME => agora_order::MIGRATIONS,
        agora_payment::NAME => agora_payment::MIGRATIONS,
        agora_shipping::NAME => agora_shipping::MIGRATIONS,
        agora_notification::NAME => agora_notification::MIGRATIONS,
        other => anyhow::bail!(
            "no service is called `{other}` (one of {})",
            SERVICES.join(", ")
        ),
    };
    Ok([
        outbox::MIGRATIONS,
        idempotency::MIGRATIONS,
        retention::MIGRATIONS,
        own,
    ])
}

/// Opens (migrates) nothing: builds service `name` on an open, migrated `db`.
pub fn component(name: &str, db: Db, deps: &Deps) -> anyhow::Result<Component> {
    let mut periodic: Vec<Arc<dyn Periodic>> = Vec::new();
    let mut breakers: Vec<Arc<Breaker>> = Vec::new();
    let mut background: Vec<Background> = Vec::new();
    let (name, router, handler): (&'static str, Router, Option<Arc<dyn EventHandler>>) = match name
    {
        agora_catalog::NAME => (
            agora_catalog::NAME,
            agora_catalog::api::router(Catalog::new(db.clone())),
            None,
        ),
        agora_inventory::NAME => {
            let inventory = Inventory::new(db.clone(), deps.reservation_ttl);
            periodic.push(Arc::new(agora_inventory::ReservationExpiry(
                inventory.clone(),
            )));
            (
                agora_inventory::NAME,
                agora_inventory::api::router(inventory),
                Some(Arc::new(agora_inventory::handlers::Handler {
                    reservation_ttl: deps.reservation_ttl,
                })),
            )
        }
        agora_cart::NAME => (
            agora_cart::NAME,
            agora_cart::api::router(Carts {
                idempotency_ttl: deps.idempotency_ttl,
                ..Carts::new(db.clone(), deps.catalog.clone())
            }),
            Some(Arc::new(agora_cart::handlers::Handler)),
        ),
        agora_order::NAME => {
            let mut orders = Orders::new(db.clone(), deps.catalog.clone());
            orders.step_timeout = deps.step_timeout;
            orders.idempotency_ttl = deps.idempotency_ttl;
            orders.max_waiters = deps.max_waiters;
            orders.stock = deps.stock_check.clone();
            breakers.push(orders.stock_breaker.clone());
            periodic.push(Arc::new(agora_order::DeadlineSweep(orders.clone())));
            let follower = orders.clone();
            background.push(Box::new(move |shutdown| {
                Box::pin(async move { follower.follow_other_instances(shutdown).await })
            }));
            (
                agora_order::NAME,
                agora_order::api::router(orders.clone()),
                Some(Arc::new(agora_order::handlers::Handler { orders })),
            )
        }
        agora_payment::NAME => (
            agora_payment::NAME,
            agora_payment::api::router(Payments::new(db.clone(), deps.payment_gateway.clone())),
            Some(Arc::new(agora_payment::handlers::Handler {
                gateway: deps.payment_gateway.clone(),
            })),
        ),
        agora_shipping::NAME => (
            agora_shipping::NAME,
            agora_shipping::api::router(Shipping::new(db.clone())),
            Some(Arc::new(agora_shipping::handlers::Handler)),
        ),
        agora_notification::NAME => (
            agora_notification::NAME,
            agora_notification::api::router(Notifications::new(db.clone())),
            Some(Arc::new(agora_notification::handlers::Handler::default())),
        ),
        other => anyhow::bail!(
            "no service is called `{other}` (one of {})",
            SERVICES.join(", ")
        ),
    };
    // Secrets an earlier release kept in clear are masked once, at start.
    let (masking, service) = (db.clone(), name);
    background.push(Box::new(move |_| {
        Box::pin(async move {
            let masked = async {
                let mut n = outbox::mask_kept_secrets(&masking).await?;
                if service == agora_order::NAME {
                    n += agora_order::store::mask_spent_tokens(&masking).await?;
                }
                Ok::<_, agora_platform::DbError>(n)
            };
            if let Err(e) = masked.await {
                tracing::warn!(error = %e, "could not mask the secrets an earlier release kept");
            }
        })
    }));
    // It finds out at its first pass whether the server vacuums by itself.
    periodic.push(Arc::new(Vacuum::new(db.clone())));
    let records = match name {
        agora_notification::NAME => vec![
            Records {
                table: "notifications",
                key: "id",
            },
            // Keyed by order id: an order's contact goes with its messages.
            Records {
                table: "contacts",
                key: "order_id",
            },
        ],
        _ => Vec::new(),
    };
    let keep = Keep {
        idempotency_keys: deps.idempotency_ttl,
        ..deps.keep.clone()
    };
    periodic.push(Arc::new(Retention::new(
        db.clone(),
        keep,
        handler.as_ref().map(|h| h.consumer()),
        records,
    )));
    Ok(Component {
        name,
        db,
        router,
        handler,
        periodic,
        breakers,
        background,
    })
}

/// Seeds the demo catalog if `db` is the catalog's and it is empty.
pub async fn seed_demo(db: &Db) -> anyhow::Result<()> {
    let seeded = Catalog::new(db.clone())
        .seed_demo()
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    if seeded > 0 {
        tracing::info!(products = seeded, "seeded the demo catalog");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event no queue is bound to would be published into the void (or,
    /// `mandatory`, never leave its outbox): every event has a consumer.
    #[test]
    fn every_event_is_consumed_by_some_service() {
        for (key, _) in agora_platform::events::event_schemas() {
            assert!(
                CONSUMERS.iter().any(|(_, keys)| keys.contains(&key)),
                "nobody consumes {key}"
            );
        }
    }

    #[test]
    fn a_publisher_declares_the_queues_of_the_consumers_of_its_events() {
        let names = |publisher| -> Vec<String> {
            queues_fed_by(publisher)
                .into_iter()
                .map(|q| q.service)
                .collect()
        };
        assert_eq!(names(agora_catalog::NAME), ["inventory"]);
        assert_eq!(names(agora_cart::NAME), ["order"]);
        assert_eq!(
            names(agora_order::NAME),
            ["inventory", "cart", "payment", "shipping", "notification"]
        );
        assert_eq!(names(agora_notification::NAME), Vec::<String>::new());
        let inventory = &queues_fed_by(agora_catalog::NAME)[0];
        assert_eq!(
            inventory.routing_keys.len(),
            agora_inventory::handlers::ROUTING_KEYS.len()
        );
    }
}
