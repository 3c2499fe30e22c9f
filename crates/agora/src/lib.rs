//! The `agora` binary's library: how the services are composed (all in one
//! process, or one per process behind a gateway) and the load generator.
//! `main.rs` only parses the command line.

pub mod admin;
pub mod app;
pub mod asyncapi;
pub mod audit;
pub mod bench;
pub mod credentials;
pub mod dlq;
pub mod event_log;
pub mod gateway;
pub mod host;
pub mod limits;
pub mod loadgen;
pub mod openapi;
pub mod operator;
pub mod secrets;
pub mod service;
pub mod services;
pub mod settings;
pub mod trace;
pub mod users;

pub use app::{Application, Config};
