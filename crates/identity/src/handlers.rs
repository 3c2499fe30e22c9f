//! The identity service consumes no events and emits none: accounts and
//! tokens are asked for synchronously. The module exists so that every
//! service crate has the same shape.
