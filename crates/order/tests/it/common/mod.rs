//! What the order service's tests arrange alike: fresh databases with the
//! tables an order needs, a product to order, and a PENDING order of it.

use agora_catalog::domain::{NewProduct, NewProductRequest, Product};
use agora_catalog::Catalog;
use agora_order::domain::{Order, PlaceOrder, PlaceOrderRequest};
use agora_order::Orders;
use agora_platform::events::Money;
use agora_platform::outbox;
use agora_testing::{backends, TestDb};
use serde_json::json;
use uuid::Uuid;

/// One fresh database per backend, with the catalog's and order's tables.
pub async fn dbs() -> Vec<TestDb> {
    backends(&[
        outbox::MIGRATIONS,
        agora_catalog::MIGRATIONS,
        agora_order::MIGRATIONS,
    ])
    .await
}

/// A mug at 9.00 EUR in `catalog`.
pub async fn mug(catalog: &Catalog) -> Product {
    catalog
        .create(
            Uuid::now_v7(),
            &NewProduct::parse(NewProductRequest {
                name: "Mug".into(),
                sku: "MUG-1".into(),
                description: None,
                price: Money {
                    amount: 900,
                    currency: "EUR".into(),
                },
                initial_stock: 0,
            })
            .unwrap(),
        )
        .await
        .unwrap()
}

/// A PENDING order of `quantity` of `product_id`, created (and committed)
/// through `orders`.
pub async fn pending_order(orders: &Orders, product_id: Uuid, quantity: u32) -> Order {
    let request: PlaceOrderRequest = serde_json::from_value(json!({
        "customer_id": "c-1", "email": "c1@example.com",
        "items": [{ "product_id": product_id, "quantity": quantity }],
        "shipping_address": { "name": "A", "line1": "1 St", "city": "Berlin",
                              "postal_code": "10115", "country": "DE" },
        "payment_token": "tok_visa",
    }))
    .unwrap();
    let order = orders
        .priced(Uuid::now_v7(), PlaceOrder::parse(request).unwrap())
        .await
        .unwrap();
    let mut tx = orders.db.begin().await.unwrap();
    orders.create_in(&mut tx, &order, None).await.unwrap();
    tx.commit().await.unwrap();
    order
}
