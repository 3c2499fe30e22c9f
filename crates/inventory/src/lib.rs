//! Inventory service: stock levels and reservations.
//!
//! Owns `stock`, `reservations` and `adjustments`. Every unit of a product is
//! in exactly one of available, reserved or sold; reservation is
//! all-or-nothing across an order's items and is a conditional update
//! (`available >= wanted`), so concurrent orders, or several inventory
//! instances, can never oversell.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use agora_platform::Db;

pub use store::MIGRATIONS;

pub const NAME: &str = "inventory";

#[derive(Clone)]
pub struct Inventory {
    pub db: Db,
}

impl Inventory {
    pub fn new(db: Db) -> Self {
        Inventory { db }
    }
}
