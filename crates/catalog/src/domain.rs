//! Products and the rules a new product must satisfy.

use std::collections::BTreeMap;

use agora_platform::events::{LineItem, Money, PricedItem};
use agora_platform::validate::{self, Errors};
use agora_platform::validate::{FieldError, Invalid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "Desk lamp", "sku": "LP-008", "description": "LED, dimmable", "price": {"amount": 3400, "currency": "EUR"}, "initial_stock": 100}))]
pub struct NewProductRequest {
    /// 1 to 200 characters.
    pub name: String,
    /// Capitals, digits and dashes; unique.
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
    pub fn parse(req: NewProductRequest) -> Result<NewProduct, Invalid> {
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

/// Lines priced with the catalog's products, and what they come to.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    pub items: Vec<PricedItem>,
    pub total: Money,
}

/// Prices lines with the catalog's products: the one rule by which a cart
/// (shown, filled or checked out) and an order are priced, so that a cart
/// the checkout accepts is one the order service accepts. Prices never
/// come from the client. Unknown products, more lines than an order may
/// have, mixed currencies and a total beyond what a `i64` of minor units
/// holds are per-field errors; amounts are never summed across currencies
/// and never overflow.
pub fn price(items: &[LineItem], products: &[Product]) -> Result<Priced, Vec<FieldError>> {
    let by_id: BTreeMap<Uuid, &Product> = products.iter().map(|p| (p.id, p)).collect();
    let mut errors = Vec::new();
    if items.len() > validate::MAX_ITEMS {
        errors.push(FieldError::new(
            "items",
            format!("must contain at most {} items", validate::MAX_ITEMS),
        ));
    }
    let mut priced = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match by_id.get(&item.product_id) {
            Some(p) => priced.push(PricedItem {
                product_id: p.id,
                sku: p.sku.clone(),
                name: p.name.clone(),
                quantity: item.quantity,
                unit_price: p.price.amount,
            }),
            None => errors.push(FieldError::new(
                format!("items[{i}].product_id"),
                format!("product {} does not exist", item.product_id),
            )),
        }
    }
    let mut currencies: Vec<&str> = items
        .iter()
        .filter_map(|i| by_id.get(&i.product_id).map(|p| p.price.currency.as_str()))
        .collect();
    currencies.sort_unstable();
    currencies.dedup();
    if currencies.len() > 1 {
        errors.push(FieldError::new(
            "items",
            format!(
                "all items must be priced in one currency (found {})",
                currencies.join(", ")
            ),
        ));
    }
    let amount = priced.iter().try_fold(0i64, |sum, line| {
        line.unit_price
            .checked_mul(i64::from(line.quantity))
            .and_then(|line_total| sum.checked_add(line_total))
    });
    if amount.is_none() {
        errors.push(FieldError::new("items", "the total is too large"));
    }
    match (errors.is_empty(), amount, currencies.first()) {
        (true, Some(amount), currency) => Ok(Priced {
            items: priced,
            total: Money {
                amount,
                // No item is no currency (ISO 4217 "XXX"): only an empty
                // cart is priced without items.
                currency: currency.copied().unwrap_or("XXX").to_owned(),
            },
        }),
        _ => Err(errors),
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
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
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

#[cfg(test)]
mod pricing_tests {
    use super::*;

    fn product(currency: &str, amount: i64) -> Product {
        Product {
            id: Uuid::now_v7(),
            sku: "S".into(),
            name: "N".into(),
            description: String::new(),
            price: Money {
                amount,
                currency: currency.into(),
            },
            created_at: String::new(),
        }
    }

    fn line(p: &Product, quantity: u32) -> LineItem {
        LineItem {
            product_id: p.id,
            quantity,
        }
    }

    #[test]
    fn lines_are_priced_with_catalog_prices_and_unknown_products_are_named() {
        let p = product("EUR", 250);
        let priced = price(&[line(&p, 3)], std::slice::from_ref(&p)).unwrap();
        assert_eq!(priced.items[0].unit_price, 250);
        assert_eq!(
            priced.total,
            Money {
                amount: 750,
                currency: "EUR".into()
            }
        );
        let unknown = LineItem {
            product_id: Uuid::now_v7(),
            quantity: 1,
        };
        let errors = price(&[line(&p, 1), unknown], &[p]).unwrap_err();
        assert_eq!(errors[0].field, "items[1].product_id");
    }

    #[test]
    fn amounts_of_different_currencies_are_never_summed() {
        let (a, b) = (product("EUR", 100), product("USD", 100));
        let errors = price(&[line(&a, 1), line(&b, 1)], &[a, b]).unwrap_err();
        assert_eq!(errors[0].field, "items");
        assert!(
            errors[0].message.contains("EUR, USD"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_total_that_would_overflow_is_refused() {
        let dear = product("EUR", i64::MAX / 2);
        let errors = price(&[line(&dear, 3)], std::slice::from_ref(&dear)).unwrap_err();
        assert_eq!(errors[0].message, "the total is too large");
        let (a, b) = (product("EUR", i64::MAX - 1), product("EUR", 2));
        assert!(price(&[line(&a, 1), line(&b, 1)], &[a, b]).is_err());
    }

    #[test]
    fn more_lines_than_an_order_may_have_are_refused() {
        let products: Vec<Product> = (0..=validate::MAX_ITEMS)
            .map(|_| product("EUR", 1))
            .collect();
        let lines: Vec<LineItem> = products.iter().map(|p| line(p, 1)).collect();
        let errors = price(&lines, &products).unwrap_err();
        assert_eq!(errors[0].field, "items");
        assert!(price(&lines[1..], &products).is_ok());
    }

    #[test]
    fn nothing_is_priced_in_no_currency() {
        assert_eq!(price(&[], &[]).unwrap().total.currency, "XXX");
    }
}
