//! Agora's end-to-end specifications: the binary, the embedded app and the distributed cluster, through their public API.
//!
//! One test binary for the crate (one link, one process): each file is a
//! module of specifications, `common` the helpers they share.

mod access;
mod api;
mod asyncapi;
mod bench;
mod broker_restart;
mod chaos;
mod checkout;
mod common;
mod crash;
mod dead_letters;
mod deadlines;
mod deploy;
mod distributed;
mod event_replay;
mod gateway;
mod graphql;
mod idempotency;
mod identity;
mod limits;
mod loadgen;
mod observability;
mod openapi;
mod operator_views;
mod postgres_restart;
mod python_consumer;
mod races;
mod readme;
mod saga;
mod service_kill;
mod web;
