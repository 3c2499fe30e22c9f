//! Deadlines: a saga step that takes too long is compensated, and a
//! reservation that outlives its time to live returns to available stock.

use std::time::Duration;

use crate::common::{order_body, spawn_app_on, spawn_app_with};

#[tokio::test]
async fn an_overdue_step_cancels_the_order_and_compensates() {
    // Payment never answers in time.
    let app = spawn_app_with(|c| {
        c.settings.step_timeout = Duration::from_millis(800);
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
        .find(|e| e["to"] == "COMPENSATING")
        .unwrap()
        .clone();
    assert_eq!(last["cause"], "deadline");
    app.eventually(|| async { app.stock(product).await["available"] == 10 })
        .await;

    // Payment comes back and handles the late request: it charges, then
    // refunds on the cancellation. No net charge, stock conserved.
    let dir = app.stop().await;
    let app = spawn_app_on(dir, |c| {
        c.settings.step_timeout = Duration::from_millis(800)
    })
    .await;
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
        c.settings.reservation_ttl = Duration::from_millis(800);
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

/// A refund that is not confirmed in time: the order ends in
/// REQUIRES_ATTENTION; an operator retries one compensation and
/// force-cancels another; when payment is back every refund happens exactly
/// once and the audit is clean.
#[tokio::test]
async fn an_unconfirmed_compensation_requires_attention_until_an_operator_acts() {
    // Shipping held so that orders stay PAID.
    let app = spawn_app_with(|c| c.paused_consumers = vec!["shipping".into()]).await;
    let product = app.create_product(1_000, 10).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.place_order(&order_body(product, 1, "tok_visa")).await);
    }
    for id in &ids {
        app.reaches(*id, "PAID").await;
    }
    let dir = app.stop().await;

    // Payment is down now: cancellations cannot be refunded in time.
    let down = |c: &mut agora::Config| {
        c.settings.step_timeout = Duration::from_millis(800);
        c.paused_consumers = vec!["shipping".into(), "payment".into()];
    };
    let app = spawn_app_on(dir, down).await;
    for id in &ids {
        let r = app
            .post_json(
                &format!("/api/v1/orders/{id}/cancel"),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    for id in &ids {
        let order = app.reaches(*id, "REQUIRES_ATTENTION").await;
        assert_eq!(order["reason"], "not confirmed in time: refund");
        assert_eq!(order["awaiting"], serde_json::json!(["refund"]));
    }
    let (waiting, retried, forced) = (ids[0], ids[1], ids[2]);
    // The operator's command line, against the running instance.
    let (ok, listed) = operator(&app.base, &["orders", "attention"]).await;
    assert!(
        ok && listed.contains("3 orders require attention"),
        "{listed}"
    );
    let (ok, out) = operator(&app.base, &["orders", "force-cancel", &forced.to_string()]).await;
    assert!(ok && out.contains("is now CANCELLED"), "{out}");
    assert_eq!(app.order(forced).await["status"], "CANCELLED");
    let r = app
        .post_json(
            &format!("/api/v1/orders/{retried}/retry-compensation"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["status"],
        "COMPENSATING"
    );
    let again = app
        .post_json(
            &format!("/api/v1/orders/{forced}/retry-compensation"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(
        again.status(),
        409,
        "a cancelled order has nothing to retry"
    );
    // Each action is on its order's timeline with who took it.
    let admin = format!("admin {}", app.own_id().await);
    for (id, cause) in [
        (retried, "operator: retry compensation"),
        (forced, "operator: force cancel"),
        (waiting, "POST /orders/{id}/cancel"),
    ] {
        let timeline = app.order(id).await["timeline"].clone();
        let entry = timeline
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["cause"] == cause)
            .unwrap_or_else(|| panic!("no `{cause}` on {timeline}"))
            .clone();
        assert_eq!(entry["actor"], admin.as_str(), "{entry}");
    }
    let dir = app.stop().await;

    // Payment is back: the refunds (asked once or twice) happen exactly once.
    let app = spawn_app_on(dir, |c| c.paused_consumers = vec!["shipping".into()]).await;
    for id in [waiting, retried] {
        let order = app.reaches(id, "CANCELLED").await;
        assert_eq!(order["awaiting"], serde_json::json!([]));
    }
    app.eventually(|| async {
        let mut refunded = 0;
        for id in &ids {
            let payments = app.list(&format!("/api/v1/payments?order_id={id}")).await;
            assert_eq!(payments.len(), 1);
            refunded += usize::from(payments[0]["status"] == "REFUNDED");
        }
        refunded == 3
    })
    .await;
    app.drained("notification").await;
    // The customer heard of the cancellation once, not again when the
    // operator sent the compensation a second time.
    let told = app
        .list(&format!("/api/v1/notifications?order_id={retried}"))
        .await
        .into_iter()
        .filter(|n| n["kind"] == "ORDER_CANCELLED")
        .count();
    assert_eq!(told, 2, "one email and one SMS");
    app.assert_audit_clean().await;
}

/// Runs `agora <args> --url <base>`: (succeeded, stdout).
async fn operator(base: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .args(["--url", base])
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
