//! Payment service: payments and refunds through a simulated gateway.
//!
//! Owns `payments`. The gateway is deterministic so that tests can drive it:
//! token `tok_decline` is declined, amounts above a configurable limit are
//! declined, anything else is captured. At most one payment exists per
//! order, so a repeated request can never charge twice.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use agora_platform::Db;

pub use domain::Gateway;
pub use store::MIGRATIONS;

pub const NAME: &str = "payment";

#[derive(Clone)]
pub struct Payments {
    pub db: Db,
    pub gateway: Gateway,
}

impl Payments {
    pub fn new(db: Db, gateway: Gateway) -> Self {
        Payments { db, gateway }
    }
}
