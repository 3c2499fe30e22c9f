//! Products and the rules a new product must satisfy.

use agora_platform::events::Money;
use agora_platform::http::ApiError;
use agora_platform::validate::{self, Errors};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub created_at: String,
}

/// The highest price a product may have, in minor units.
pub const MAX_PRICE: i64 = 100_000_000;
/// The largest opening stock of a new product.
pub const MAX_INITIAL_STOCK: i64 = 10_000_000;

/// `POST /products` as sent; every field is checked by [`NewProduct::parse`].
#[derive(Debug, Deserialize)]
pub struct NewProductRequest {
    pub name: String,
    pub sku: String,
    #[serde(default)]
    pub description: Option<String>,
    pub price: Money,
    #[serde(default)]
    pub initial_stock: i64,
}

/// A product that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProduct {
    pub name: String,
    pub sku: String,
    pub description: String,
    pub price: Money,
    pub initial_stock: u32,
}

impl NewProduct {
    pub fn parse(req: NewProductRequest) -> Result<NewProduct, ApiError> {
        let mut errors = Errors::new();
        let name = errors.check("name", validate::text(&req.name, 200));
        let sku = errors.check("sku", sku(req.sku.trim()));
        let description = errors.check(
            "description",
            validate::multiline_text(req.description.as_deref().unwrap_or_default(), 2_000),
        );
        if !(1..=MAX_PRICE).contains(&req.price.amount) {
            errors.add(
                "price.amount",
                format!("must be between 1 and {MAX_PRICE} minor units"),
            );
        }
        let currency = errors.check("price.currency", validate::currency(&req.price.currency));
        if !(0..=MAX_INITIAL_STOCK).contains(&req.initial_stock) {
            errors.add(
                "initial_stock",
                format!("must be between 0 and {MAX_INITIAL_STOCK}"),
            );
        }
        errors.finish()?;
        Ok(NewProduct {
            name: name.expect("checked"),
            sku: sku.expect("checked"),
            description: description.expect("checked"),
            price: Money {
                amount: req.price.amount,
                currency: currency.expect("checked"),
            },
            initial_stock: req.initial_stock as u32,
        })
    }
}

/// A stock-keeping unit: 1 to 64 upper-case letters, digits, `-` or `_`.
pub fn sku(value: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be 1-64 characters of A-Z, 0-9, '-' or '_'".into())
    }
}

/// The demo catalog seeded on first start: fixed ids so that the README's
/// walkthrough can name them.
pub fn demo_products() -> Vec<(Uuid, NewProduct)> {
    let items: [(&str, &str, &str, i64); 12] = [
        (
            "KB-001",
            "Mechanical keyboard",
            "Tenkeyless, hot-swappable switches",
            8_900,
        ),
        (
            "MS-002",
            "Wireless mouse",
            "Six buttons, USB-C charging",
            3_900,
        ),
        ("MN-003", "27-inch monitor", "2560x1440, 144 Hz", 29_900),
        (
            "HS-004",
            "Headset",
            "Closed-back, detachable microphone",
            7_900,
        ),
        ("WC-005", "Webcam", "1080p, privacy shutter", 5_900),
        (
            "DK-006",
            "USB-C dock",
            "Two displays, 100 W passthrough",
            14_900,
        ),
        ("CH-007", "Desk chair", "Mesh back, adjustable arms", 24_900),
        ("LP-008", "Desk lamp", "Dimmable LED, warm to cold", 3_400),
        ("SS-009", "Laptop stand", "Aluminium, foldable", 2_900),
        ("CB-010", "Cable kit", "Ten braided USB-C cables", 1_900),
        ("MP-011", "Mouse pad", "Extended, stitched edges", 1_500),
        ("SP-012", "Speakers", "Bookshelf pair, Bluetooth", 11_900),
    ];
    items
        .iter()
        .enumerate()
        .map(|(i, (sku, name, description, price))| {
            (
                Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0000 + i as u128 + 1),
                NewProduct {
                    name: (*name).into(),
                    sku: (*sku).into(),
                    description: (*description).into(),
                    price: Money {
                        amount: *price,
                        currency: "EUR".into(),
                    },
                    initial_stock: 100,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> NewProductRequest {
        NewProductRequest {
            name: "Kettle".into(),
            sku: "KT-1".into(),
            description: None,
            price: Money {
                amount: 2_500,
                currency: "EUR".into(),
            },
            initial_stock: 10,
        }
    }

    #[test]
    fn a_valid_product_parses() {
        let product = NewProduct::parse(request()).unwrap();
        assert_eq!(product.sku, "KT-1");
        assert_eq!(product.initial_stock, 10);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut req = request();
        req.name = " ".into();
        req.sku = "bad sku".into();
        req.price.amount = 0;
        req.price.currency = "euro".into();
        req.initial_stock = -1;
        let err = NewProduct::parse(req).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "sku",
                "price.amount",
                "price.currency",
                "initial_stock"
            ]
        );
    }

    #[test]
    fn the_demo_catalog_is_valid_and_has_unique_ids() {
        let demo = demo_products();
        assert!(demo.len() >= 10);
        let mut ids: Vec<_> = demo.iter().map(|(id, _)| *id).collect();
        ids.dedup();
        assert_eq!(ids.len(), demo.len());
        assert!(demo.iter().all(|(_, p)| sku(&p.sku).is_ok()));
    }
}
