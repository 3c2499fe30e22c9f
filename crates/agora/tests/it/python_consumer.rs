//! A consumer written with another stack reads the distributed mode's
//! events as the contract describes them: `scripts/python-consumer.py`
//! (pika, the CloudEvents SDK, jsonschema) binds its own queue to the
//! events exchange from the AsyncAPI document the gateway serves, parses
//! every message as a CloudEvent, fetches each `dataschema` by its absolute
//! URI and validates `data` against it, while orders go through every path
//! that emits an event: all fifteen types.
//!
//! It runs the Python named by `AGORA_TEST_PYTHON` (one with
//! `scripts/requirements-consumer.txt` installed; `.ci/run` makes it).
//! Without it the test is skipped, unless `AGORA_REQUIRE_SERVERS=1`, where
//! it fails.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use agora_platform::events::EVENT_TYPES;
use agora_platform::outbox::OutboxRecord;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::common::cluster::Cluster;
use crate::common::{address, checkout, order_body};

/// The Python to run the consumer with, if there is one to use.
fn python() -> Option<String> {
    match std::env::var("AGORA_TEST_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ if std::env::var("AGORA_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => panic!(
            "AGORA_REQUIRE_SERVERS=1 but AGORA_TEST_PYTHON (a Python with \
             scripts/requirements-consumer.txt installed) is not set"
        ),
        _ => {
            eprintln!("AGORA_TEST_PYTHON is not set: the Python consumer's test is skipped");
            None
        }
    }
}

fn script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-consumer.py")
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_python_consumer_reads_and_validates_every_event_type_by_the_contract() {
    let Some(python) = python() else { return };
    let cluster = Cluster::start(&[]).await;
    let mut consumer = tokio::process::Command::new(python)
        .arg(script())
        .args([
            "--contract",
            &format!("{}/api/asyncapi.json", cluster.public_url()),
        ])
        .args(["--amqp-url", &cluster.amqp_url])
        .args(["--exchange", &cluster.broker().config().exchange()])
        .args(["--timeout", "180"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the Python consumer starts");
    let mut lines = BufReader::new(consumer.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the consumer bound its queue within 60 s")
        .unwrap();
    if first.as_deref() != Some("ready") {
        let output = consumer.wait_with_output().await.unwrap();
        panic!(
            "the consumer did not start: {first:?}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    every_path_that_emits_an_event(&cluster).await;

    let output = tokio::time::timeout(Duration::from_secs(200), consumer.wait_with_output())
        .await
        .expect("the consumer ends")
        .unwrap();
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        printed.push(line);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(printed.last().map_or("", String::as_str))
        .unwrap_or_else(|_| panic!("no report: {printed:?}\n{stderr}"));
    assert!(
        output.status.success(),
        "the consumer found problems ({}): {report:#}\n{stderr}",
        output.status
    );
    let read: BTreeSet<&str> = report["read"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let every: BTreeSet<&str> = EVENT_TYPES.iter().map(|e| e.name).collect();
    assert_eq!(read, every, "{report:#}");
    assert_eq!(report["invalid"], json!([]));
    cluster.assert_audit_clean().await;
    cluster.stop().await;
}

/// A completed order, a declined one, a cart checked out, a checkout the
/// order service refuses, an order that raced past the stock check, and a
/// paid order cancelled before it shipped: every event type is emitted.
async fn every_path_that_emits_an_event(cluster: &Cluster) {
    let product = cluster.create_product(2_000, 10).await;
    let paid = cluster
        .place_order(&order_body(product, 1, "tok_visa"))
        .await;
    let declined = cluster
        .place_order(&order_body(product, 1, "tok_decline"))
        .await;

    let name = "python-consumer";
    let shopper = cluster.customer(name).await;
    let item = json!({ "product_id": product, "quantity": 1 });
    let added = shopper.post_json("/api/v1/carts/me/items", &item).await;
    assert_eq!(added.status(), 200);
    let body = json!({ "email": "ada@example.com", "shipping_address": address(), "payment_token": "tok_visa" });
    let r = shopper.post_json("/api/v1/carts/me/checkout", &body).await;
    assert_eq!(r.status(), 202);
    let checked_out: Uuid = r.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Delivered straight to the order service, as if the catalog had
    // changed since the cart checked them: one it cannot price
    // (CheckoutRejected), one beyond the stock (StockRejected).
    let customer = cluster.customer_id(name).await;
    let eur = cluster.create_product_in(1_000, "EUR", 5).await;
    let usd = cluster.create_product_in(1_000, "USD", 5).await;
    let (refused, mixed) = checkout::checked_out(&customer, &[eur, usd]);
    let (too_many, event) = checkout::checked_out(&customer, &[product]);
    let beyond = event.replace("\"quantity\":1", "\"quantity\":50");
    let records: Vec<OutboxRecord> = [mixed, beyond]
        .into_iter()
        .map(|envelope| OutboxRecord {
            id: Uuid::now_v7().to_string(),
            routing_key: "cart.checked_out.v1".into(),
            envelope,
        })
        .collect();
    agora_platform::amqp::deliver_to(cluster.broker().config(), "order", &records)
        .await
        .unwrap();

    // Shipping held back, so that the order is PAID when it is cancelled:
    // the payment is refunded.
    cluster.kill("shipping").await;
    let refunded = cluster
        .place_order(&order_body(product, 1, "tok_visa"))
        .await;
    cluster.reaches(refunded, "PAID").await;
    let cancel = json!({ "reason": "changed my mind" });
    let r = cluster
        .post_json(&format!("/api/v1/orders/{refunded}/cancel"), &cancel)
        .await;
    assert_eq!(r.status(), 200);
    cluster.restart("shipping").await;
    cluster.instance_ready("shipping").await;

    for (id, status) in [
        (paid, "COMPLETED"),
        (declined, "CANCELLED"),
        (checked_out, "COMPLETED"),
        (refused, "REJECTED"),
        (too_many, "REJECTED"),
        (refunded, "CANCELLED"),
    ] {
        let path = format!("/api/v1/orders/{id}");
        cluster
            .eventually(|| async { cluster.get(&path).await.status() == 200 })
            .await;
        assert_eq!(cluster.terminal(id).await["status"], status, "{id}");
    }
    cluster
        .eventually(|| async {
            let payments = cluster
                .list(&format!("/api/v1/payments?order_id={refunded}"))
                .await;
            payments.len() == 1 && payments[0]["status"] == "REFUNDED"
        })
        .await;
}
