//! The shared platform of the Agora services: the event contract, storage
//! over SQLite or PostgreSQL, the transactional outbox and idempotent inbox,
//! the embedded durable bus, HTTP plumbing, input checks and telemetry.

pub mod amqp;
pub mod auth;
pub mod bench;
pub mod breaker;
pub mod bus;
pub mod chaos;
pub mod client;
pub mod clock;
pub mod consumer;
pub mod db;
pub mod dead_letters;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod memo;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod periodic;
pub mod reconnect;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod service;
pub mod supervise;
pub mod telemetry;
pub mod transport;
pub mod vacuum;
pub mod validate;

pub use db::{Db, DbError, Tx};
pub use events::Envelope;
