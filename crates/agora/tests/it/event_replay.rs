//! `agora events replay`: re-delivering logged events with their original
//! ids, types and payloads charges, ships and notifies nobody twice.

use crate::common::{order_body, spawn_app, spawn_app_on, Api};
use serde_json::Value;

fn agora(dir: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn replaying_the_event_log_has_no_second_effect() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 20).await;
    let mut ids = Vec::new();
    for token in ["tok_visa", "tok_visa", "tok_decline"] {
        ids.push(app.place_order(&order_body(product, 2, token)).await);
    }
    for id in &ids {
        app.terminal(*id).await;
    }
    app.settled().await;
    let mut before = Vec::new();
    for id in &ids {
        before.push(effects(&app, *id).await);
    }
    let stock_before = app.stock(product).await;
    let dir = app.stop().await;

    let listed = agora(&dir, &["events", "list", "--type", "PaymentRequested"]);
    assert!(listed.contains("3 events"), "{listed}");
    for (to, event_type) in [
        ("payment", "PaymentRequested"),
        ("shipping", "ShippingRequested"),
        ("notification", "OrderCreated"),
        ("notification", "PaymentSucceeded"),
        ("inventory", "OrderCreated"),
        ("inventory", "OrderCompleted"),
    ] {
        let out = agora(
            &dir,
            &["events", "replay", "--to", to, "--type", event_type],
        );
        assert!(out.contains("replayed to"), "{out}");
    }

    // Proof that replays arrive, with their original ids: events inventory
    // does not handle end in its dead-letter queue.
    let shipped = agora(&dir, &["events", "list", "--type", "ShippingCreated"]);
    agora(
        &dir,
        &[
            "events",
            "replay",
            "--to",
            "inventory",
            "--type",
            "ShippingCreated",
        ],
    );

    let app = spawn_app_on(dir, |_| {}).await;
    app.settled().await;
    let dead = app
        .list("/api/v1/admin/dead-letters?service=inventory")
        .await;
    assert_eq!(dead.len(), 2);
    for letter in &dead {
        assert!(
            shipped.contains(letter["event_id"].as_str().unwrap()),
            "{letter}"
        );
    }
    for (id, expected) in ids.iter().zip(before) {
        assert_eq!(effects(&app, *id).await, expected, "order {id}");
    }
    let stock: Value = app.stock(product).await;
    assert_eq!(stock, stock_before);
    app.assert_audit_clean().await;
}

/// (payments, shipments, notifications) of one order.
async fn effects(api: &Api, id: uuid::Uuid) -> (usize, usize, usize) {
    (
        api.list(&format!("/api/v1/payments?order_id={id}"))
            .await
            .len(),
        api.list(&format!("/api/v1/shipments?order_id={id}"))
            .await
            .len(),
        api.list(&format!("/api/v1/notifications?order_id={id}"))
            .await
            .len(),
    )
}

/// A replay is bounded by the consumers' replay window: an event older
/// than it is not replayed (the record that it was handled may be swept).
#[tokio::test]
async fn events_older_than_the_replay_window_are_not_replayed() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 5).await;
    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;
    app.terminal(id).await;
    app.settled().await;
    let dir = app.stop().await;

    let out = agora(
        &dir,
        &[
            "events",
            "replay",
            "--to",
            "notification",
            "--type",
            "OrderCreated",
            "--inbox-retention-days",
            "0",
        ],
    );

    assert!(
        out.contains("1 events older than the 0-day replay window are not replayed"),
        "{out}"
    );
    assert!(out.contains("0 events replayed to notification"), "{out}");
}
