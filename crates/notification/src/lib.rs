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
