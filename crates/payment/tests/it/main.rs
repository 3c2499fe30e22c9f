//! The payment service's integration tests: voids, on both backends.
//!
//! One test binary for the crate (one link, one process): each file is a
//! module of specifications.

mod voids;
