//! The identity service's integration tests: accounts, tokens and their
//! verification, over HTTP, on each backend.
//!
//! One test binary for the crate (one link, one process): each file is a
//! module of specifications.

mod accounts;
mod helpers;
mod tokens;
