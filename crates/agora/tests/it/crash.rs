//! `kill -9` of the real binary in the middle of many sagas, then a restart
//! on the same data directory: no order is lost or stuck, nothing is charged
//! or sold twice, stock is conserved.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{fresh_dir, order_body, root_api, start_binary};
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

#[tokio::test]
async fn kill_dash_nine_mid_saga_loses_nothing() {
    let dir = fresh_dir();
    let (mut server, base) = start_binary(&dir, &[]).await;
    let admin = root_api(&base).await;
    let product = admin.create_product(500, 1000).await;
    let api = Arc::new(admin.customer("crash").await);

    // Eight clients place orders (every fifth declined) until the server dies.
    let accepted = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let mut clients = Vec::new();
    for worker in 0..8 {
        let (api, accepted) = (api.clone(), accepted.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..100 {
                let token = if (worker + n) % 5 == 0 {
                    "tok_decline"
                } else {
                    "tok_visa"
                };
                let body = order_body(product, 2, token);
                match api
                    .client
                    .post(api.url("/api/v1/orders"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 201 => {
                        let order: Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .await
                            .push(order["id"].as_str().unwrap().parse().unwrap());
                    }
                    _ => break,
                }
            }
        }));
    }
    while accepted.lock().await.len() < 150 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let accepted = accepted.lock().await.clone();

    let (_server, base) = start_binary(&dir, &[]).await;
    let api = admin.moved_to(&base);

    // Every order that exists (accepted, or committed with its answer lost)
    // reaches a terminal state; the audit then checks charges and stock.
    let ids = api.orders_of("crash").await;
    for id in &accepted {
        assert!(ids.contains(id), "accepted order {id} was lost");
    }
    let mut completed = 0;
    for id in &ids {
        completed += i64::from(api.terminal(*id).await["status"] == "COMPLETED");
    }
    assert!(completed > 0);
    api.eventually(|| async {
        let stock = api.stock(product).await;
        stock["reserved"] == 0 && stock["sold"] == completed * 2
    })
    .await;
    api.assert_audit_clean().await;
    eprintln!(
        "kill -9: {} orders ({} accepted before the kill), {completed} completed, audit clean",
        ids.len(),
        accepted.len()
    );
}
