//! Notification service: email and SMS messages, recorded and queryable.
//!
//! Owns `contacts` (learned from `OrderCreated`) and `notifications`. Sending
//! is simulated: a notification is recorded, which is what a real sender
//! would read from. One message per event and channel, whatever the
//! redeliveries.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use agora_platform::db::Migration;
use agora_platform::retention::Records;
use agora_platform::service::{Context, Parts, Service};
use agora_platform::Db;

pub use store::MIGRATIONS;

pub const NAME: &str = "notification";

#[derive(Clone)]
pub struct Notifications {
    pub db: Db,
}

impl Notifications {
    pub fn new(db: Db) -> Self {
        Notifications { db }
    }
}

/// The notification service: what the customer is told at each outcome,
/// and the contact it is sent to.
pub struct NotificationService;

#[async_trait::async_trait]
impl Service for NotificationService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/api/v1/notifications"]
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <api::ApiDoc as utoipa::OpenApi>::openapi()
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    fn consumes(&self) -> &'static [&'static str] {
        handlers::ROUTING_KEYS
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        Ok(
            Parts::new(api::router(Notifications::new(context.db.clone())))
                .with_handler(handlers::Handler::default())
                .with_records(vec![
                    Records {
                        table: "notifications",
                        key: "id",
                    },
                    // Keyed by order id: an order's contact goes with its messages.
                    Records {
                        table: "contacts",
                        key: "order_id",
                    },
                ]),
        )
    }
}
