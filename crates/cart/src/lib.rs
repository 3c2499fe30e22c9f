//! Cart service: one cart per customer; checkout emits `CartCheckedOut`,
//! from which the order service creates the order.
//!
//! Owns `cart_items`. Products are checked against the catalog when added;
//! prices shown in a cart are the catalog's current ones, and the order is
//! priced again by the order service at checkout.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use std::sync::Arc;

use agora_catalog::CatalogClient;
use agora_platform::db::Migration;
use agora_platform::service::{Context, Parts, Service};
use agora_platform::Db;

pub use store::MIGRATIONS;

pub const NAME: &str = "cart";

#[derive(Clone)]
pub struct Carts {
    pub db: Db,
    pub catalog: Arc<dyn CatalogClient>,
    /// How long an `Idempotency-Key` on checkout is remembered.
    pub idempotency_ttl: std::time::Duration,
}

impl Carts {
    pub fn new(db: Db, catalog: Arc<dyn CatalogClient>) -> Self {
        Carts {
            db,
            catalog,
            idempotency_ttl: agora_platform::idempotency::DEFAULT_TTL,
        }
    }
}

/// The cart service: a customer's cart, priced by the catalog, checked out
/// into an order.
pub struct CartService;

#[async_trait::async_trait]
impl Service for CartService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["carts"]
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    fn consumes(&self) -> &'static [&'static str] {
        handlers::ROUTING_KEYS
    }

    fn needs(&self) -> &'static [&'static str] {
        &[agora_catalog::NAME]
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        let catalog: Arc<dyn CatalogClient> = context.peer()?;
        let carts = Carts {
            idempotency_ttl: context.settings.idempotency_ttl,
            ..Carts::new(context.db.clone(), catalog.clone())
        };
        Ok(Parts::new(api::router(carts))
            .with_handler(handlers::Handler)
            .with_breakers(catalog.breaker()))
    }
}
