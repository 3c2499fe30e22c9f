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

use agora_platform::db::Migration;
use agora_platform::service::{Context, Parts, Service};
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

/// The payment service: charges for reserved orders, refunds for
/// compensated ones.
pub struct PaymentService;

#[async_trait::async_trait]
impl Service for PaymentService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["payments"]
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    fn consumes(&self) -> &'static [&'static str] {
        handlers::ROUTING_KEYS
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        let gateway = Gateway {
            decline_above: context.settings.payment_decline_above,
        };
        Ok(Parts::new(api::router(Payments::new(
            context.db.clone(),
            gateway.clone(),
        )))
        .with_handler(handlers::Handler { gateway }))
    }
}
