//! Shipping service: shipments.
//!
//! Owns `shipments`, at most one per order. Creates a shipment when the
//! order service asks, and cancels it (or leaves a tombstone) when the order
//! is cancelled first.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

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
