//! The cart consumes no events: it only emits `CartCheckedOut` (see
//! [`crate::api`]). The module exists so that every service crate has the
//! same shape.
