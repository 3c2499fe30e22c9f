//! Events out of their usual order: cancellations that overtake the steps
//! they cancel, with every event delivered twice, and poison in every
//! queue. The invariants hold whatever the interleaving.

use std::sync::Arc;

use crate::common::{order_body, spawn_app_with, Api};
use serde_json::json;
use uuid::Uuid;

/// Places `n` orders and cancels each at once, so that cancellations land in
/// every state and overtake requests still in flight.
pub async fn cancel_races(
    api: Arc<impl std::ops::Deref<Target = Api> + Send + Sync + 'static>,
    product: Uuid,
    n: usize,
) -> Vec<Uuid> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let id = api.place_order(&order_body(product, 1, "tok_visa")).await;
            let r = api
                .post_json(&format!("/api/v1/orders/{id}/cancel"), &json!({}))
                .await;
            assert!(
                matches!(r.status().as_u16(), 200 | 409),
                "cancel answered {}",
                r.status()
            );
            api.terminal(id).await;
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

#[tokio::test]
async fn cancellations_overtaking_their_steps_leave_nothing_held_or_charged() {
    let app = Arc::new(spawn_app_with(|c| c.duplicate_delivery = true).await);
    let product = app.create_product(1_000, 100).await;

    let ids = cancel_races(app.clone(), product, 40).await;

    app.settled().await;
    let mut cancelled = 0;
    for id in &ids {
        if app.order(*id).await["status"] == "CANCELLED" {
            cancelled += 1;
        }
    }
    assert!(cancelled > 0, "no cancellation won a race");
    app.assert_audit_clean().await;
}

#[tokio::test]
async fn poison_in_every_queue_is_dead_lettered_and_every_consumer_goes_on() {
    let app = spawn_app_with(|_| {}).await;
    let product = app.create_product(1_000, 10).await;
    let consumers = ["inventory", "order", "payment", "shipping", "notification"];
    for consumer in consumers {
        app.bus
            .inject(consumer, "order.created.v1", "\u{0}poison")
            .await
            .unwrap();
    }

    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;

    assert_eq!(app.terminal(id).await["status"], "COMPLETED");
    app.eventually(|| async {
        app.list("/api/v1/admin/dead-letters").await.len() == consumers.len()
    })
    .await;
    for consumer in consumers {
        assert_eq!(
            app.list(&format!("/api/v1/admin/dead-letters?service={consumer}"))
                .await
                .len(),
            1
        );
    }
    app.settled().await;
    app.assert_audit_clean().await;
}
