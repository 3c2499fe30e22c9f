//! Carts and checkout requests, free of I/O.

use agora_catalog::domain::price;
use agora_catalog::Product;
use agora_platform::events::{Address, LineItem, Money};
use agora_platform::validate::{self, Errors, Purchase};
use agora_platform::validate::{FieldError, Invalid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A product to add to the cart (`POST …/items`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"product_id": "00000000-0000-7000-8000-000000000001", "quantity": 2}))]
pub struct AddItemRequest {
    /// A product of the catalog.
    pub product_id: Uuid,
    /// 1 to 1,000, added to the line's quantity if the cart has the product.
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

/// The new quantity of a line (`PUT …/items/{product_id}`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quantity": 3}))]
pub struct SetQuantityRequest {
    /// 1 to 1,000.
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

impl SetQuantityRequest {
    pub fn parse(self) -> Result<u32, Invalid> {
        let mut errors = Errors::new();
        let quantity = errors.check("quantity", validate::quantity(self.quantity));
        errors.finish()?;
        Ok(quantity.expect("checked"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AddItem {
    pub product_id: Uuid,
    pub quantity: u32,
}

impl AddItem {
    pub fn parse(req: AddItemRequest) -> Result<AddItem, Invalid> {
        let mut errors = Errors::new();
        let quantity = errors.check("quantity", validate::quantity(req.quantity));
        errors.finish()?;
        Ok(AddItem {
            product_id: req.product_id,
            quantity: quantity.expect("checked"),
        })
    }
}

/// `POST …/checkout`: who the order is for, where it goes and how it is
/// paid; every field is checked by [`CheckoutRequest::parse`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "phone": "+15551234567", "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"}, "payment_token": "tok_visa"}))]
pub struct CheckoutRequest {
    /// Where the order's notifications go.
    #[schema(
        max_length = 254,
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]+@[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*\\.[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][\\s\\u0085]*$"
    )]
    pub email: String,
    /// International, like `+15551234567` (spaces and dashes are dropped);
    /// for text messages. Blank is none.
    #[serde(default)]
    #[schema(pattern = "^[\\s\\u0085]*([ -]*\\+[ -]*([0-9][ -]*){7,15}[\\s\\u0085]*)?$")]
    pub phone: Option<String>,
    pub shipping_address: Address,
    /// The payment provider's token for the card (`tok_visa` succeeds,
    /// `tok_decline` is declined).
    #[schema(pattern = "^[!-~]{1,200}$")]
    pub payment_token: String,
}

impl CheckoutRequest {
    /// Checks every field, naming each one that is wrong.
    pub fn parse(self) -> Result<Purchase, Invalid> {
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

/// A line of a cart, priced with the catalog's current price.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CartLine {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    /// Minor units, in the product's currency.
    pub unit_price: i64,
    /// `unit_price` times `quantity`; `null` only if it would not fit a
    /// 64-bit amount.
    #[schema(required = true)]
    pub line_total: Option<i64>,
}

/// A customer's cart, priced with the catalog's current prices.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cart {
    pub customer_id: String,
    /// The lines whose products the catalog knows, with current prices.
    pub items: Vec<CartLine>,
    /// `None` for an empty cart, or one that cannot be checked out as it is.
    #[schema(required = true)]
    pub total: Option<Money>,
    /// What keeps the cart from being checked out (a product that is gone,
    /// mixed currencies), named like the checkout's 422 would name it;
    /// absent when nothing does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<agora_platform::openapi::FieldProblem>)]
    pub problems: Vec<FieldError>,
}

/// The cart as shown: each line priced by the catalog and, when the whole
/// cart can be checked out, its total, computed by the same rule as the
/// order's ([`agora_catalog::domain::price`]): never a sum across
/// currencies, never an overflow.
pub fn view(customer_id: String, items: &[LineItem], products: &[Product]) -> Cart {
    let lines = items
        .iter()
        .filter_map(|item| {
            let p = products.iter().find(|p| p.id == item.product_id)?;
            Some(CartLine {
                product_id: p.id,
                sku: p.sku.clone(),
                name: p.name.clone(),
                quantity: item.quantity,
                unit_price: p.price.amount,
                line_total: p.price.amount.checked_mul(i64::from(item.quantity)),
            })
        })
        .collect();
    let (total, problems) = match price(items, products) {
        Ok(_) if items.is_empty() => (None, Vec::new()),
        Ok(priced) => (Some(priced.total), Vec::new()),
        Err(problems) => (None, problems),
    };
    Cart {
        customer_id,
        items: lines,
        total,
        problems,
    }
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
        assert_eq!(bad.0[0].field, "quantity");
        assert!(AddItem::parse(AddItemRequest {
            product_id: Uuid::now_v7(),
            quantity: 2
        })
        .is_ok());
    }

    fn product(currency: &str) -> Product {
        Product {
            id: Uuid::now_v7(),
            sku: "S".into(),
            name: "N".into(),
            description: String::new(),
            price: Money {
                amount: 300,
                currency: currency.into(),
            },
            created_at: String::new(),
        }
    }

    #[test]
    fn a_cart_never_sums_amounts_of_different_currencies() {
        let (eur, usd) = (product("EUR"), product("USD"));
        let lines = [
            LineItem {
                product_id: eur.id,
                quantity: 2,
            },
            LineItem {
                product_id: usd.id,
                quantity: 1,
            },
        ];
        let cart = view("c".into(), &lines, &[eur.clone(), usd]);
        assert_eq!(cart.items.len(), 2);
        assert_eq!(cart.total, None);
        assert_eq!(cart.problems[0].field, "items");
        let one = view("c".into(), &lines[..1], &[eur]);
        assert_eq!(one.total.unwrap().amount, 600);
        assert!(one.problems.is_empty());
        assert_eq!(view("c".into(), &[], &[]).total, None);
    }
}
