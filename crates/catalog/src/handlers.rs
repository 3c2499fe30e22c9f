//! The catalog consumes no events: it only emits `ProductCreated` (see
//! [`crate::store::insert`]). The module exists so that every service crate
//! has the same shape.
