//! The `agora` binary's library: how the services are composed (embedded
//! mode) and the load generator. `main.rs` only parses the command line.

pub mod app;
pub mod loadgen;

pub use app::{Application, Config};
