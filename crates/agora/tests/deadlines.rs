//! Deadlines: a saga step that takes too long is compensated, and a
//! reservation that outlives its time to live returns to available stock.

mod common;

use std::time::Duration;

use common::{order_body, spawn_app_on, spawn_app_with};

#[tokio::test]
async fn an_overdue_step_cancels_the_order_and_compensates() {
    // Payment never answers in time.
    let app = spawn_app_with(|c| {
        c.step_timeout = Duration::from_millis(800);
        c.paused_consumers = vec!["payment".into()];
    })
    .await;
    let product = app.create_product(1_000, 10).await;
    let id = app.place_order(&order_body(product, 3, "tok_visa")).await;

    let order = app.reaches(id, "CANCELLED").await;

    assert_eq!(order["reason"], "timed out waiting in RESERVED");
    let last = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "CANCELLED" && e["from"] != "CANCELLED")
        .unwrap()
        .clone();
    assert_eq!(last["cause"], "deadline");
    app.eventually(|| async { app.stock(product).await["available"] == 10 })
        .await;

    // Payment comes back and handles the late request: it charges, then
    // refunds on the cancellation. No net charge, stock conserved.
    let dir = app.stop().await;
    let app = spawn_app_on(dir, |c| c.step_timeout = Duration::from_millis(800)).await;
    app.eventually(|| async {
        let payments = app.list(&format!("/api/v1/payments?order_id={id}")).await;
        payments.len() == 1 && payments[0]["status"] == "REFUNDED"
    })
    .await;
    app.settled().await;
    assert_eq!(app.order(id).await["status"], "CANCELLED");
    app.assert_audit_clean().await;
}

#[tokio::test]
async fn an_expired_reservation_returns_to_stock_and_cancels_its_order() {
    let app = spawn_app_with(|c| {
        c.reservation_ttl = Duration::from_millis(800);
        c.paused_consumers = vec!["payment".into()];
    })
    .await;
    let product = app.create_product(1_000, 10).await;
    let id = app.place_order(&order_body(product, 4, "tok_visa")).await;
    app.reaches(id, "RESERVED").await;

    let order = app.reaches(id, "CANCELLED").await;

    assert_eq!(order["reason"], "the stock reservation expired");
    let stock = app.stock(product).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(10), Some(0))
    );
    let dir = app.stop().await;
    let app = spawn_app_on(dir, |_| {}).await;
    app.eventually(|| async {
        let payments = app.list(&format!("/api/v1/payments?order_id={id}")).await;
        payments.len() == 1 && payments[0]["status"] == "REFUNDED"
    })
    .await;
    app.settled().await;
    app.assert_audit_clean().await;
}
