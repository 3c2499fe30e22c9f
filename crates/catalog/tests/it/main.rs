//! The catalog service's integration tests: the catalog over HTTP.
//!
//! One test binary for the crate (one link, one process): each file is a
//! module of specifications.

mod http_catalog;
