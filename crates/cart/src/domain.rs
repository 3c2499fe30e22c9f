//! Carts and checkout requests, free of I/O.

use agora_platform::events::{Address, Money};
use agora_platform::http::ApiError;
use agora_platform::validate::{self, Errors, Purchase};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A customer id from the path: 1 to 100 characters.
pub fn customer_id(raw: &str) -> Result<String, ApiError> {
    validate::text(raw, 100).map_err(|m| ApiError::bad_request(format!("customer id {m}")))
}

#[derive(Debug, Deserialize)]
pub struct AddItemRequest {
    pub product_id: Uuid,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AddItem {
    pub product_id: Uuid,
    pub quantity: u32,
}

impl AddItem {
    pub fn parse(req: AddItemRequest) -> Result<AddItem, ApiError> {
        let mut errors = Errors::new();
        let quantity = errors.check("quantity", validate::quantity(req.quantity));
        errors.finish()?;
        Ok(AddItem {
            product_id: req.product_id,
            quantity: quantity.expect("checked"),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutRequest {
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    pub shipping_address: Address,
    pub payment_token: String,
}

impl CheckoutRequest {
    /// Checks every field, naming each one that is wrong.
    pub fn parse(self) -> Result<Purchase, ApiError> {
        let mut errors = Errors::new();
        let purchase = validate::purchase(
            &self.email,
            self.phone.as_deref(),
            &self.shipping_address,
            &self.payment_token,
            &mut errors,
        );
        errors.finish()?;
        Ok(purchase.expect("checked"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CartLine {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: i64,
    pub line_total: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cart {
    pub customer_id: String,
    pub items: Vec<CartLine>,
    /// `None` for an empty cart.
    pub total: Option<Money>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_checked() {
        let bad = AddItem::parse(AddItemRequest {
            product_id: Uuid::now_v7(),
            quantity: 0,
        })
        .unwrap_err();
        assert_eq!(bad.errors[0].field, "quantity");
        assert!(AddItem::parse(AddItemRequest {
            product_id: Uuid::now_v7(),
            quantity: 2
        })
        .is_ok());
    }

    #[test]
    fn customer_ids_must_not_be_blank() {
        assert!(customer_id(" ").is_err());
        assert_eq!(customer_id("c-1").unwrap(), "c-1");
    }
}
