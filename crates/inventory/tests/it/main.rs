//! The inventory service's integration tests: its store on both backends and its batched handling.
//!
//! One test binary for the crate (one link, one process): each file is a
//! module of specifications.

mod batches;
mod store;
