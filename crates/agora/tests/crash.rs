//! `kill -9` of the real binary in the middle of many sagas, then a restart
//! on the same data directory: no order is lost or stuck, nothing is charged
//! or sold twice, stock is conserved.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{address, fresh_dir};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

async fn terminal(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let order: Value = client
            .get(format!("{base}/api/v1/orders/{id}?wait_ms=2000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(
            order["status"].as_str().unwrap(),
            "COMPLETED" | "CANCELLED" | "REJECTED"
        ) {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} stuck: {order}"
        );
    }
}

#[tokio::test]
async fn kill_dash_nine_mid_saga_loses_nothing() {
    let dir = fresh_dir();
    let (mut server, base) = common::start_binary(&dir, &[]).await;
    let client = reqwest::Client::new();
    let product: Value = client
        .post(format!("{base}/api/v1/products"))
        .json(&json!({ "name": "Crash", "sku": "CRASH-1", "price": { "amount": 500, "currency": "EUR" }, "initial_stock": 1000 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let product_id: Uuid = product["id"].as_str().unwrap().parse().unwrap();

    // Eight clients place orders (every fifth declined) until the server dies.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for worker in 0..8 {
        let (client, base, accepted) = (client.clone(), base.clone(), accepted.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..100 {
                let token = if (worker + n) % 5 == 0 {
                    "tok_decline"
                } else {
                    "tok_visa"
                };
                let body = json!({
                    "customer_id": "crash", "email": "c@example.com",
                    "items": [{ "product_id": product_id, "quantity": 2 }],
                    "shipping_address": address(), "payment_token": token,
                });
                match client
                    .post(format!("{base}/api/v1/orders"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 201 => {
                        let order: Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .await
                            .push(order["id"].as_str().unwrap().to_owned());
                    }
                    _ => break,
                }
            }
        }));
    }
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if accepted.lock().await.len() >= 150 {
            break;
        }
    }
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let accepted = accepted.lock().await.clone();

    let (_server, base) = common::start_binary(&dir, &[]).await;

    // Every order that exists (accepted, or committed with its answer lost)
    // reaches a terminal state.
    let listed: Value = client
        .get(format!("{base}/api/v1/orders?customer_id=crash&limit=500"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &accepted {
        assert!(ids.contains(id), "accepted order {id} was lost");
    }
    let mut completed = 0i64;
    for id in &ids {
        let order = terminal(&client, &base, id).await;
        let payments: Vec<Value> = client
            .get(format!("{base}/api/v1/payments?order_id={id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let captured = payments
            .iter()
            .filter(|p| p["status"] == "CAPTURED")
            .count();
        if order["status"] == "COMPLETED" {
            completed += 1;
            assert_eq!(
                captured, 1,
                "completed order {id} must be charged exactly once"
            );
        } else {
            assert_eq!(captured, 0, "ended order {id} must hold no charge");
        }
    }
    assert!(completed > 0);

    // Give the last confirmations (releases, sales) time to land.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stock = loop {
        let stock: Value = client
            .get(format!("{base}/api/v1/inventory/{product_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stock["reserved"] == 0 && stock["sold"] == completed * 2 {
            break stock;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stock never settled: {stock}, {completed} completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        stock["available"].as_i64().unwrap() + stock["sold"].as_i64().unwrap(),
        1000,
        "{stock}"
    );
    let report = agora::audit::audit(&base, 120).await.unwrap();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}
