//! What operators are told beyond the orders themselves: the figures of the
//! orders, each service's outbox backlog, an order's journey across the
//! services and the breakers, on the embedded app and joined by the
//! gateway from the separate services.

use serde_json::Value;

use crate::common::cluster::Cluster;
use crate::common::{order_body, spawn_app, Api};

async fn one_order_is_seen_in_every_view(api: &Api) {
    // Arrange: one order, completed.
    let product = api.create_product(1_500, 10).await;
    let order = api.place_order(&order_body(product, 1, "tok_visa")).await;
    assert_eq!(api.terminal(order).await["status"], "COMPLETED");

    // Act and assert: the order's figures count it.
    let stats = api.get_json("/api/v1/orders/stats?window_secs=600").await;
    assert!(
        stats["ended"]["COMPLETED"].as_i64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["completed_per_sec"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    assert!(stats["p99_ms"].as_i64().unwrap() >= stats["p50_ms"].as_i64().unwrap());
    let bad = api.get("/api/v1/orders/stats?window_secs=0").await;
    assert_eq!(bad.status(), 400);

    // Its journey: every event about it, from each service that published
    // one, the first one caused by nothing and every other by an event of
    // the journey.
    let events = api
        .list(&format!("/api/v1/admin/events?subject={order}"))
        .await;
    let sources: Vec<&str> = events.iter().filter_map(|e| e["source"].as_str()).collect();
    for service in ["order", "inventory", "payment", "shipping"] {
        assert!(sources.contains(&service), "{service} in {sources:?}");
    }
    let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "OrderCreated")
        .collect();
    assert_eq!(created.len(), 1, "{events:?}");
    for e in &events {
        if let Some(cause) = e["causation_id"].as_str() {
            assert!(
                ids.contains(&cause),
                "{e} is caused by an event of the journey"
            );
        }
    }
    assert!(events.iter().any(|e| e["event_type"] == "OrderCompleted"));
    let missing = api.get("/api/v1/admin/events").await;
    assert_eq!(missing.status(), 422, "a subject is required");

    // Every service's outbox, drained by now; and the breakers.
    api.eventually(|| async {
        let outbox = api.list("/api/v1/admin/outbox").await;
        let services: Vec<&str> = outbox
            .iter()
            .filter_map(|b| b["service"].as_str())
            .collect();
        assert_eq!(services.len(), 8, "{outbox:?}");
        outbox.iter().all(|b| b["unpublished"] == 0)
    })
    .await;
    let breakers = api.list("/api/v1/admin/breakers").await;
    assert!(
        breakers.iter().all(|b| b["state"] == "closed"),
        "{breakers:?}"
    );
    assert!(!breakers.is_empty());
}

#[tokio::test]
async fn on_the_embedded_app() {
    let app = spawn_app().await;
    one_order_is_seen_in_every_view(&app).await;
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn through_the_gateway() {
    let cluster = Cluster::start(&[]).await;
    one_order_is_seen_in_every_view(&cluster).await;
    cluster.stop().await;
}
