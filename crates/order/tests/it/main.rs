//! The order service's integration tests: saga batches, several instances, waiters.
//!
//! One test binary for the crate (one link, one process): each file is a
//! module of specifications, `common` the helpers they share.

mod common;
mod instances;
mod saga_batch;
mod waiters;
