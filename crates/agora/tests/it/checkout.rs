//! Checkout in the embedded mode: validated by the order's own rules
//! before the cart is emptied; a checkout the order service still refuses
//! is a REJECTED order and a restored cart.

use crate::common::checkout::{
    a_cart_refuses_a_product_in_another_currency, checked_out,
    the_refused_checkout_is_rejected_and_the_cart_restored,
};
use crate::common::{address, spawn_app};
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn a_cart_refuses_a_product_priced_in_another_currency() {
    let app = spawn_app().await;
    a_cart_refuses_a_product_in_another_currency(&app).await;
}

#[tokio::test]
async fn a_cart_holds_no_more_lines_than_an_order_may_have() {
    let admin = spawn_app().await;
    let app = admin.customer("many-lines").await;
    let cart = "/api/v1/carts/me";
    for _ in 0..agora_platform::validate::MAX_ITEMS {
        let product = admin.new_product(100, "EUR", 1).await;
        let r = app
            .post_json(
                &format!("{cart}/items"),
                &json!({ "product_id": product, "quantity": 1 }),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let one_more = admin.new_product(100, "EUR", 1).await;
    let r = app
        .post_json(
            &format!("{cart}/items"),
            &json!({ "product_id": one_more, "quantity": 1 }),
        )
        .await;
    assert_eq!(r.status(), 409, "the cart's lines stand in the way");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "items", "{problem}");
    assert_eq!(
        app.get_json(cart).await["items"].as_array().unwrap().len(),
        agora_platform::validate::MAX_ITEMS
    );
}

/// A line whose product the catalog no longer knows (written into the
/// cart's storage: the catalog has no delete yet) makes the checkout a 409
/// naming the line, and the cart keeps every line.
#[tokio::test]
async fn a_cart_with_a_vanished_product_is_refused_at_checkout_and_kept() {
    let admin = spawn_app().await;
    let product = admin.create_product(1_000, 5).await;
    let app = admin.customer("vanished").await;
    let vanished = admin.customer_id("vanished").await;
    let cart = "/api/v1/carts/me";
    let add = json!({ "product_id": product, "quantity": 2 });
    assert_eq!(
        app.post_json(&format!("{cart}/items"), &add).await.status(),
        200
    );
    let gone = Uuid::now_v7();
    let cart_db = agora_platform::Db::open_sqlite(&admin.data_dir.join("cart.db"), false).unwrap();
    let mut tx = cart_db.begin().await.unwrap();
    tx.execute(
        "INSERT INTO cart_items (customer_id, product_id, quantity, added_at) VALUES ($1, $2, 1, '9999')",
        agora_platform::params![vanished, gone],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let shown = app.get_json(cart).await;
    assert_eq!(
        shown["problems"][0]["field"], "items[1].product_id",
        "{shown}"
    );
    let checkout = json!({ "email": "ada@example.com", "shipping_address": address(), "payment_token": "tok_visa" });
    let r = app.post_json(&format!("{cart}/checkout"), &checkout).await;
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(
        problem["errors"][0]["field"], "items[1].product_id",
        "{problem}"
    );
    assert_eq!(
        app.get_json(cart).await["items"].as_array().unwrap().len(),
        1
    );
    cart_db.close().await;
}

/// A cart asking for more than is in stock is refused at checkout as an
/// order placed would be: a 409 naming the line, the cart kept, no order.
#[tokio::test]
async fn a_cart_beyond_the_stock_is_refused_at_checkout_with_the_line_named_and_kept() {
    let admin = spawn_app().await;
    let plenty = admin.create_product(1_000, 50).await;
    let scarce = admin.create_product(1_000, 3).await;
    let app = admin.customer("beyond-stock").await;
    let cart = "/api/v1/carts/me";
    for (product, quantity) in [(plenty, 1), (scarce, 4)] {
        let add = json!({ "product_id": product, "quantity": quantity });
        let r = app.post_json(&format!("{cart}/items"), &add).await;
        assert_eq!(r.status(), 200);
    }

    let checkout = json!({ "email": "ada@example.com", "shipping_address": address(), "payment_token": "tok_visa" });
    let r = app.post_json(&format!("{cart}/checkout"), &checkout).await;

    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(
        problem["errors"][0]["field"], "items[1].quantity",
        "{problem}"
    );
    assert!(problem["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("only 3 in stock"));
    assert_eq!(
        app.get_json(cart).await["items"].as_array().unwrap().len(),
        2
    );
    assert!(app.own_orders().await.is_empty());
    assert_eq!(admin.stock(scarce).await["reserved"], 0);
}

#[tokio::test]
async fn a_checkout_the_order_service_refuses_is_a_rejected_order_and_a_restored_cart() {
    let app = spawn_app().await;
    let eur = app.create_product_in(1_000, "EUR", 5).await;
    let usd = app.create_product_in(1_000, "USD", 5).await;
    let customer = "refused-checkout";
    let (order_id, event) = checked_out(&app.customer_id(customer).await, &[eur, usd]);

    app.bus
        .inject("order", "cart.checked_out.v1", &event)
        .await
        .unwrap();

    the_refused_checkout_is_rejected_and_the_cart_restored(&app, order_id, customer, 2).await;
    app.assert_audit_clean().await;
}

/// A line's quantity is set, not added to; a quantity out of range or a
/// line the cart does not hold changes nothing.
#[tokio::test]
async fn a_cart_line_takes_the_quantity_it_is_given() {
    let admin = spawn_app().await;
    let product = admin.create_product(1_000, 50).await;
    let app = admin.customer("sets-quantity").await;
    let line = format!("/api/v1/carts/me/items/{product}");
    let add = json!({ "product_id": product, "quantity": 2 });
    assert_eq!(
        app.post_json("/api/v1/carts/me/items", &add).await.status(),
        200
    );

    let set = |quantity: i64| {
        app.client
            .put(format!("{}{line}", app.base))
            .json(&json!({ "quantity": quantity }))
            .send()
    };
    let r = set(5).await.unwrap();

    assert_eq!(r.status(), 200);
    let cart: Value = r.json().await.unwrap();
    assert_eq!(cart["items"][0]["quantity"], 5);
    assert_eq!(cart["total"]["amount"], 5_000);
    for bad in [0, 1_001] {
        let r = set(bad).await.unwrap();
        assert_eq!(r.status(), 422);
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "quantity");
    }
    let absent = admin.create_product(1_000, 50).await;
    let r = app
        .client
        .put(format!("{}/api/v1/carts/me/items/{absent}", app.base))
        .json(&json!({ "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.get_json("/api/v1/carts/me").await["items"][0]["quantity"],
        5
    );
}
