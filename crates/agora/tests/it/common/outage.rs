//! Load through a distributed cluster while one of its servers is stopped
//! and started again, then the invariants: every accepted order terminal,
//! charged at most once, stock conserved.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::cluster::Cluster;
use super::{assert_conserved, order_body};

/// Places `orders` orders from `clients` concurrent clients, runs `outage`
/// once a third of them are placed, and checks the invariants afterwards.
pub async fn orders_survive<F, Fut>(cluster: Cluster, orders: usize, clients: usize, outage: F)
where
    F: FnOnce(Arc<Cluster>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cluster = Arc::new(cluster);
    let product = cluster.create_product(700, 100_000).await;
    let accepted = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let shopper = cluster.customer("cust-1").await;
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (shopper, accepted) = (shopper.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..orders / clients {
                let token = if (worker + n) % 7 == 0 {
                    "tok_decline"
                } else {
                    "tok_visa"
                };
                let r = shopper
                    .client
                    .post(shopper.url("/api/v1/orders"))
                    .json(&order_body(product, 1, token))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let id = r.json::<Value>().await.unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .parse()
                            .unwrap();
                        accepted.lock().await.push(id);
                    }
                    // Refused while a server is down: the client would retry.
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }));
    }
    while accepted.lock().await.len() < orders / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    outage(cluster.clone()).await;
    for task in tasks {
        task.await.unwrap();
    }
    cluster.ready().await;

    let accepted = accepted.lock().await.clone();
    assert!(
        accepted.len() >= orders / 3,
        "too few orders accepted: {}",
        accepted.len()
    );
    // Every order that exists counts: the accepted ones, and those committed
    // whose answer was lost when a process died.
    let ids = cluster.orders_of("cust-1").await;
    for id in &accepted {
        assert!(ids.contains(id), "accepted order {id} was lost");
    }
    let mut completed = 0;
    for id in &ids {
        let order = cluster.terminal(*id).await;
        let payments = cluster
            .list(&format!("/api/v1/payments?order_id={id}"))
            .await;
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
            assert_eq!(captured, 0, "ended order {id} must hold no charge: {order}");
        }
    }
    cluster
        .eventually(|| async {
            let stock = cluster.stock(product).await;
            let settled = stock["reserved"] == 0 && stock["sold"] == completed;
            if !settled {
                eprintln!("waiting for stock to settle: {stock}, {completed} completed");
            }
            settled
        })
        .await;
    assert_conserved(&cluster.stock(product).await);
    cluster.assert_audit_clean().await;
    eprintln!(
        "{} orders ({} accepted), {completed} completed, invariants hold",
        ids.len(),
        accepted.len()
    );
    Arc::try_unwrap(cluster)
        .ok()
        .expect("tasks are done")
        .stop()
        .await;
}

/// Runs a command to completion, failing loudly.
pub async fn run(program: &str, args: &[&str]) {
    let status = tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Waits until the gateway reports not ready (a dependency is down).
pub async fn not_ready(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster
            .client
            .get(cluster.url("/ready"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if status.is_ok_and(|s| s == 503) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready never reported the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
