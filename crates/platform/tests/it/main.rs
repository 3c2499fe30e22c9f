//! The platform's integration tests: storage on both backends, the outbox and inbox, RabbitMQ, the event schemas.
//!
//! One test binary for the crate (one link, one process): each file is a
//! module of specifications.

mod outbox_inbox;
mod postgres;
mod rabbitmq;
mod schemas;
mod storage;
