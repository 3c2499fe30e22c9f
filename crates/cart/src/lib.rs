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
