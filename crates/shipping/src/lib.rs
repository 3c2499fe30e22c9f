//! Shipping service: shipments.
//!
//! Owns `shipments`, at most one per order. Creates a shipment when the
//! order service asks, and cancels it (or leaves a tombstone) when the order
//! is cancelled first.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use agora_platform::db::Migration;
use agora_platform::service::{Context, Parts, Service};
use agora_platform::Db;

pub use store::MIGRATIONS;

pub const NAME: &str = "shipping";

#[derive(Clone)]
pub struct Shipping {
    pub db: Db,
}

impl Shipping {
    pub fn new(db: Db) -> Self {
        Shipping { db }
    }
}

/// The shipping service: a shipment with its tracking number for each paid
/// order.
pub struct ShippingService;

#[async_trait::async_trait]
impl Service for ShippingService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["shipments"]
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    fn consumes(&self) -> &'static [&'static str] {
        handlers::ROUTING_KEYS
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        Ok(Parts::new(api::router(Shipping::new(context.db.clone())))
            .with_handler(handlers::Handler))
    }
}
