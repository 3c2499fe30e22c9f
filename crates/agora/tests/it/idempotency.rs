//! `Idempotency-Key` on order creation, cancellation and cart checkout.

use std::sync::Arc;

use crate::common::{address, order_body, spawn_app};
use serde_json::json;

#[tokio::test]
async fn a_repeated_post_returns_the_original_answer_and_creates_one_order() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let body = order_body(product, 1, "tok_visa");
    let app = app.customer("cust-1").await;

    let (status, first, replayed) = app
        .post_with_key("/api/v1/orders", "order-key-1", &body)
        .await;
    assert_eq!((status, replayed), (201, false));
    let (status, again, replayed) = app
        .post_with_key("/api/v1/orders", "order-key-1", &body)
        .await;

    assert_eq!((status, replayed), (201, true));
    assert_eq!(again["id"], first["id"]);
    assert_eq!(app.orders_of("cust-1").await.len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let shopper = app.customer("cust-1").await;
    shopper
        .post_with_key("/api/v1/orders", "k-2", &order_body(product, 1, "tok_visa"))
        .await;

    let (status, problem, _) = shopper
        .post_with_key("/api/v1/orders", "k-2", &order_body(product, 2, "tok_visa"))
        .await;

    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.orders_of("cust-1").await.len(), 1);
}

#[tokio::test]
async fn many_clients_with_one_key_create_exactly_one_order() {
    let app = Arc::new(spawn_app().await);
    let product = app.create_product(1_000, 100).await;
    let body = order_body(product, 1, "tok_visa");
    let shopper = app.customer("cust-1").await;

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (shopper, body) = (shopper.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            shopper
                .post_with_key("/api/v1/orders", "shared", &body)
                .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (status, order, _) = task.await.unwrap();
        assert_eq!(status, 201);
        ids.push(order["id"].as_str().unwrap().to_owned());
    }

    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.orders_of("cust-1").await.len(), 1);
}

#[tokio::test]
async fn a_repeated_cancel_replays_instead_of_conflicting() {
    let app = spawn_app_paused().await;
    let product = app.create_product(1_000, 10).await;
    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;
    let path = format!("/api/v1/orders/{id}/cancel");

    let (first, _, _) = app.post_with_key(&path, "cancel-1", &json!({})).await;
    let (second, order, replayed) = app.post_with_key(&path, "cancel-1", &json!({})).await;
    let (without_key, _, _) = app.post_with_key(&path, "cancel-2", &json!({})).await;

    assert_eq!((first, second, replayed), (200, 200, true));
    assert_eq!(order["status"], "COMPENSATING");
    assert_eq!(without_key, 409);
}

#[tokio::test]
async fn a_repeated_checkout_checks_out_once() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let shopper = app.customer("idem").await;
    shopper
        .post_json(
            "/api/v1/carts/me/items",
            &json!({ "product_id": product, "quantity": 2 }),
        )
        .await;
    let body = json!({ "email": "ada@example.com", "shipping_address": address(), "payment_token": "tok_visa" });

    let (first, a, _) = shopper
        .post_with_key("/api/v1/carts/me/checkout", "co-1", &body)
        .await;
    let (second, b, replayed) = shopper
        .post_with_key("/api/v1/carts/me/checkout", "co-1", &body)
        .await;

    assert_eq!((first, second, replayed), (202, 202, true));
    assert_eq!(a["order_id"], b["order_id"]);
    let id = a["order_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.terminal(id).await["status"], "COMPLETED");
    assert_eq!(app.orders_of("idem").await.len(), 1);
}

/// Payment held back, so that an order stays cancellable.
async fn spawn_app_paused() -> crate::common::TestApp {
    crate::common::spawn_app_with(|c| c.paused_consumers = vec!["payment".into()]).await
}

#[tokio::test]
async fn keys_expire_after_their_time_to_live() {
    let app = crate::common::spawn_app_with(|c| {
        c.settings.idempotency_ttl = std::time::Duration::from_millis(200)
    })
    .await;
    let product = app.create_product(1_000, 10).await;
    let (status, first, _) = app
        .post_with_key(
            "/api/v1/orders",
            "short-lived",
            &order_body(product, 1, "tok_visa"),
        )
        .await;
    assert_eq!(status, 201);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, second, replayed) = app
        .post_with_key(
            "/api/v1/orders",
            "short-lived",
            &order_body(product, 2, "tok_visa"),
        )
        .await;

    assert_eq!(
        (status, replayed),
        (201, false),
        "an expired key is free again"
    );
    assert_ne!(second["id"], first["id"]);
}

#[tokio::test]
async fn a_retry_after_the_first_request_took_the_last_units_gets_the_original_answer() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 2).await;
    let body = order_body(product, 2, "tok_visa");
    let shopper = app.customer("cust-1").await;
    let (status, first, _) = shopper
        .post_with_key("/api/v1/orders", "last-units", &body)
        .await;
    assert_eq!(status, 201);
    let id: uuid::Uuid = first["id"].as_str().unwrap().parse().unwrap();
    app.terminal(id).await;
    assert_eq!(app.stock(product).await["available"], 0);

    // The stock check would now refuse the same order; the retry must not.
    let (status, again, replayed) = shopper
        .post_with_key("/api/v1/orders", "last-units", &body)
        .await;

    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, first);
    assert_eq!(app.orders_of("cust-1").await, [id]);
}

/// A key is the caller's own: another customer sending the same key and
/// body places an order of its own, never gets the first one's answer.
#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_caller() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let body = order_body(product, 1, "tok_visa");
    let (ann, bob) = (app.customer("ann").await, app.customer("bob").await);

    let (status, first, _) = ann.post_with_key("/api/v1/orders", "same-key", &body).await;
    assert_eq!(status, 201);
    let (status, other, replayed) = bob.post_with_key("/api/v1/orders", "same-key", &body).await;

    assert_eq!((status, replayed), (201, false));
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["customer_id"], app.customer_id("bob").await.as_str());
    assert_eq!(app.orders_of("ann").await.len(), 1);
}
