//! The order saga end to end, in one process: every path of the state
//! machine, its compensations, duplicate delivery, restarts and contention.

use crate::common::{assert_conserved, order_body, spawn_app, spawn_app_on, spawn_app_with};
use serde_json::{json, Value};
use uuid::Uuid;

fn statuses(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_paid_order_completes_with_payment_shipment_and_notifications() {
    let app = spawn_app().await;
    let product = app.create_product(2_500, 10).await;

    let id = app.place_order(&order_body(product, 3, "tok_visa")).await;
    let order = app.terminal(id).await;

    assert_eq!(order["status"], "COMPLETED");
    assert_eq!(
        order["total"],
        json!({ "amount": 7_500, "currency": "EUR" })
    );
    assert_eq!(
        statuses(&order),
        ["PENDING", "RESERVED", "PAID", "COMPLETED"]
    );
    let payments = app.list(&format!("/api/v1/payments?order_id={id}")).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "CAPTURED");
    assert_eq!(payments[0]["amount"]["amount"], 7_500);
    let shipments = app.list(&format!("/api/v1/shipments?order_id={id}")).await;
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0]["status"], "CREATED");
    app.settled().await;
    let stock = app.stock(product).await;
    assert_eq!(
        (
            stock["available"].as_i64(),
            stock["reserved"].as_i64(),
            stock["sold"].as_i64()
        ),
        (Some(7), Some(0), Some(3))
    );
    let kinds: Vec<_> = app
        .list(&format!("/api/v1/notifications?order_id={id}"))
        .await
        .iter()
        .map(|n| {
            format!(
                "{}:{}",
                n["kind"].as_str().unwrap(),
                n["channel"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "ORDER_CREATED:EMAIL",
        "ORDER_CREATED:SMS",
        "ORDER_CONFIRMED:EMAIL",
        "ORDER_SHIPPED:EMAIL",
        "ORDER_SHIPPED:SMS",
    ] {
        assert!(
            kinds.contains(&expected.to_owned()),
            "missing {expected} in {kinds:?}"
        );
    }
}

#[tokio::test]
async fn an_order_beyond_the_stock_is_rejected_and_holds_nothing() {
    // Without the fast stock check at the door, the saga itself rejects.
    let app = spawn_app_with(|c| c.settings.stock_check = false).await;
    let scarce = app.create_product(1_000, 2).await;
    let plenty = app.create_product(1_000, 100).await;

    let mut body = order_body(plenty, 5, "tok_visa");
    body["items"] =
        json!([{ "product_id": plenty, "quantity": 5 }, { "product_id": scarce, "quantity": 3 }]);
    let id = app.place_order(&body).await;
    let order = app.terminal(id).await;

    assert_eq!(order["status"], "REJECTED");
    assert!(
        order["reason"].as_str().unwrap().contains("stock"),
        "{}",
        order["reason"]
    );
    app.settled().await;
    for (product, units) in [(plenty, 100), (scarce, 2)] {
        let stock = app.stock(product).await;
        assert_eq!(stock["available"], units, "all or nothing: {stock}");
        assert_eq!(stock["reserved"], 0);
    }
    assert!(app
        .list(&format!("/api/v1/payments?order_id={id}"))
        .await
        .iter()
        .all(|p| p["status"] != "CAPTURED"));
}

#[tokio::test]
async fn a_declined_payment_cancels_the_order_and_releases_the_stock() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;

    let id = app
        .place_order(&order_body(product, 4, "tok_decline"))
        .await;
    let order = app.terminal(id).await;

    assert_eq!(order["status"], "CANCELLED");
    assert!(
        order["reason"].as_str().unwrap().contains("payment failed"),
        "{}",
        order["reason"]
    );
    app.reaches(id, "CANCELLED").await;
    app.eventually(|| async {
        let order = app.order(id).await;
        order["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["note"] == "stock released")
    })
    .await;
    let stock = app.stock(product).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(10), Some(0))
    );
    let payments = app.list(&format!("/api/v1/payments?order_id={id}")).await;
    assert_eq!(payments[0]["status"], "DECLINED");
    assert!(app
        .list(&format!("/api/v1/shipments?order_id={id}"))
        .await
        .is_empty());
}

#[tokio::test]
async fn an_amount_above_the_limit_is_declined() {
    let app = spawn_app_with(|c| c.settings.payment_decline_above = 5_000).await;
    let product = app.create_product(3_000, 10).await;

    let small = app.place_order(&order_body(product, 1, "tok_visa")).await;
    let large = app.place_order(&order_body(product, 2, "tok_visa")).await;

    assert_eq!(app.terminal(small).await["status"], "COMPLETED");
    assert_eq!(app.terminal(large).await["status"], "CANCELLED");
}

#[tokio::test]
async fn cancelling_after_payment_refunds_and_releases() {
    // Shipping is held back so that the order stays PAID.
    let app = spawn_app_with(|c| c.paused_consumers = vec!["shipping".into()]).await;
    let product = app.create_product(1_500, 10).await;
    let id = app.place_order(&order_body(product, 2, "tok_visa")).await;
    app.reaches(id, "PAID").await;

    let r = app
        .post_json(
            &format!("/api/v1/orders/{id}/cancel"),
            &json!({ "reason": "changed my mind" }),
        )
        .await;

    assert_eq!(r.status(), 200);
    // Cancelled, and waiting for the stock release and the refund.
    let cancelled = r.json::<Value>().await.unwrap();
    assert_eq!(cancelled["status"], "COMPENSATING");
    assert_eq!(cancelled["awaiting"], json!(["stock_release", "refund"]));
    app.reaches(id, "CANCELLED").await;
    app.eventually(|| async {
        let payments = app.list(&format!("/api/v1/payments?order_id={id}")).await;
        payments.len() == 1 && payments[0]["status"] == "REFUNDED"
    })
    .await;
    app.eventually(|| async { app.stock(product).await["available"] == 10 })
        .await;
    let order = app.order(id).await;
    assert_eq!(order["reason"], "changed my mind");
    let notes: Vec<_> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert!(
        notes.contains(&"payment refunded") && notes.contains(&"stock released"),
        "{notes:?}"
    );

    // Shipping comes back: the late request finds the order cancelled.
    let dir = app.stop().await;
    let app = spawn_app_on(dir, |_| {}).await;
    app.eventually(|| async {
        let shipments = app.list(&format!("/api/v1/shipments?order_id={id}")).await;
        shipments.len() == 1 && shipments[0]["status"] == "CANCELLED"
    })
    .await;
    assert_eq!(app.order(id).await["status"], "CANCELLED");
    assert_conserved(&app.stock(product).await);
    app.assert_audit_clean().await;
}

#[tokio::test]
async fn cancelling_a_finished_order_is_a_conflict_and_changes_nothing() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let done = app.place_order(&order_body(product, 1, "tok_visa")).await;
    app.terminal(done).await;
    let cancelled = app
        .place_order(&order_body(product, 1, "tok_decline"))
        .await;
    app.terminal(cancelled).await;

    for id in [done, cancelled] {
        let before = app.order(id).await;
        let r = app
            .post_json(&format!("/api/v1/orders/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(r.status(), 409);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(app.order(id).await["status"], before["status"]);
    }
}

/// Every event is delivered to every consumer twice: no effect happens twice.
#[tokio::test]
async fn every_event_delivered_twice_has_one_effect() {
    let app = spawn_app_with(|c| c.duplicate_delivery = true).await;
    let product = app.create_product(1_000, 100).await;

    let mut ids = Vec::new();
    for token in ["tok_visa", "tok_visa", "tok_decline", "tok_visa"] {
        ids.push((app.place_order(&order_body(product, 2, token)).await, token));
    }
    for (id, token) in &ids {
        let expected = if *token == "tok_visa" {
            "COMPLETED"
        } else {
            "CANCELLED"
        };
        assert_eq!(app.terminal(*id).await["status"], expected);
    }
    app.settled().await;

    for (id, token) in &ids {
        let payments = app.list(&format!("/api/v1/payments?order_id={id}")).await;
        assert_eq!(payments.len(), 1, "one payment per order");
        let shipments = app.list(&format!("/api/v1/shipments?order_id={id}")).await;
        assert_eq!(shipments.len(), usize::from(*token == "tok_visa"));
        let notifications = app
            .list(&format!("/api/v1/notifications?order_id={id}"))
            .await;
        // created, confirmed, shipped (or created, cancelled), by email and SMS.
        let expected = if *token == "tok_visa" { 6 } else { 4 };
        assert_eq!(notifications.len(), expected, "{notifications:?}");
        let order = app.order(*id).await;
        let transitions = order["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["from"] != e["to"])
            .count();
        // PENDING, RESERVED, then PAID, COMPLETED or COMPENSATING, CANCELLED.
        assert_eq!(transitions, 4);
    }
    let stock = app.stock(product).await;
    assert_eq!(stock["sold"], 6);
    assert_eq!(stock["reserved"], 0);
    assert_eq!(stock["available"], 94);
    assert_conserved(&stock);
    app.assert_audit_clean().await;
}

/// 200 orders race for 50 units: exactly 50 are sold, none oversold.
#[tokio::test]
async fn two_hundred_concurrent_orders_for_fifty_units_never_oversell() {
    let app = std::sync::Arc::new(spawn_app().await);
    let product = app.create_product(1_000, 50).await;

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.outcome(&order_body(product, 1, "tok_visa")).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    // Exactly 50 complete; the rest are turned away by the stock check or,
    // when they raced past it, rejected by the saga.
    let completed = outcomes.iter().filter(|s| *s == "COMPLETED").count();
    let refused = outcomes
        .iter()
        .filter(|s| *s == "REFUSED" || *s == "REJECTED")
        .count();
    assert_eq!((completed, refused), (50, 150), "{outcomes:?}");
    app.settled().await;
    let stock = app.stock(product).await;
    assert_eq!(
        (
            stock["available"].as_i64(),
            stock["reserved"].as_i64(),
            stock["sold"].as_i64()
        ),
        (Some(0), Some(0), Some(50))
    );
    assert_conserved(&stock);
    app.assert_audit_clean().await;
}

/// Stopping in the middle of many sagas loses nothing: after a restart on the
/// same data every order finishes.
#[tokio::test]
async fn sagas_interrupted_by_a_restart_all_finish() {
    let app =
        spawn_app_with(|c| c.paused_consumers = vec!["payment".into(), "shipping".into()]).await;
    let product = app.create_product(1_000, 100).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let token = if i % 5 == 0 {
            "tok_decline"
        } else {
            "tok_visa"
        };
        ids.push(app.place_order(&order_body(product, 1, token)).await);
    }
    app.eventually(|| async { app.stock(product).await["reserved"] == 20 })
        .await;
    let dir = app.stop().await;

    let app = spawn_app_on(dir, |_| {}).await;

    let mut completed = 0;
    for id in &ids {
        let order = app.terminal(*id).await;
        if order["status"] == "COMPLETED" {
            completed += 1;
        }
    }
    assert_eq!(completed, 16);
    app.settled().await;
    let stock = app.stock(product).await;
    assert_eq!(
        (stock["sold"].as_i64(), stock["reserved"].as_i64()),
        (Some(16), Some(0))
    );
    assert_conserved(&stock);
    app.assert_audit_clean().await;
}

#[tokio::test]
async fn a_checked_out_cart_becomes_a_completed_order() {
    let admin = spawn_app().await;
    let product = admin.create_product(1_200, 10).await;
    let other = admin.create_product(800, 10).await;
    let app = admin.customer("cust-9").await;
    for (p, q) in [(product, 2), (other, 1), (product, 1)] {
        let r = app
            .post_json(
                "/api/v1/carts/me/items",
                &json!({ "product_id": p, "quantity": q }),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/carts/me/items/{other}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cart = app.get_json("/api/v1/carts/me").await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["total"]["amount"], 3_600);

    let r = app
        .post_json(
            "/api/v1/carts/me/checkout",
            &json!({ "email": "ada@example.com", "shipping_address": crate::common::address(), "payment_token": "tok_visa" }),
        )
        .await;

    assert_eq!(r.status(), 202);
    let id: Uuid = r.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.eventually(|| async { app.get(&format!("/api/v1/orders/{id}")).await.status() == 200 })
        .await;
    let order = app.terminal(id).await;
    assert_eq!(order["status"], "COMPLETED");
    assert_eq!(order["total"]["amount"], 3_600);
    assert_eq!(order["timeline"][0]["cause"], "CartCheckedOut");
    assert!(app.get_json("/api/v1/carts/me").await["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_queue_and_the_consumer_goes_on() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    app.bus
        .inject("inventory", "order.created.v1", "{ not json")
        .await
        .unwrap();
    let mut wrong_shape = serde_json::to_value(agora_platform::Envelope::root(
        &agora_platform::events::OrderCompleted {
            order_id: Uuid::now_v7(),
        },
    ))
    .unwrap();
    wrong_shape["data"] = json!({ "order_id": 42 });
    app.bus
        .inject("inventory", "order.completed.v1", &wrong_shape.to_string())
        .await
        .unwrap();

    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;

    assert_eq!(app.terminal(id).await["status"], "COMPLETED");
    app.dead_lettered("inventory", 2).await;
    let dead = app
        .list("/api/v1/admin/dead-letters?service=inventory")
        .await;
    for letter in &dead {
        assert!(
            letter["error"].as_str().unwrap().starts_with("permanent"),
            "{letter}"
        );
        assert_eq!(letter["attempts"], 1);
    }
    assert!(dead.iter().any(|d| d["routing_key"] == "order.created.v1"
        && d["error"]
            .as_str()
            .unwrap()
            .contains("not an event envelope")));
    assert!(dead.iter().any(|d| d["routing_key"] == "order.completed.v1"
        && d["error"].as_str().unwrap().contains("schema")));
}

/// The customer's free-text reason stays with the order (and its
/// operators); what the customer is sent is a fixed text for the reason's
/// code, so nobody can make the system send its words to a customer.
#[tokio::test]
async fn customers_are_sent_fixed_texts_never_the_free_text_of_a_cancellation() {
    let app = spawn_app_with(|c| c.paused_consumers = vec!["payment".into()]).await;
    let product = app.create_product(1_000, 10).await;
    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;
    app.reaches(id, "RESERVED").await;
    let words = "Your account is locked, call +1 900 555 0100 at evil.example";

    let r = app
        .post_json(
            &format!("/api/v1/orders/{id}/cancel"),
            &json!({ "reason": words }),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.reaches(id, "CANCELLED").await;
    app.drained("notification").await;

    assert_eq!(app.order(id).await["reason"], words);
    let cancelled: Vec<Value> = app
        .list(&format!("/api/v1/notifications?order_id={id}"))
        .await
        .into_iter()
        .filter(|n| n["kind"] == "ORDER_CANCELLED")
        .collect();
    assert_eq!(cancelled.len(), 2, "{cancelled:?}");
    for n in &cancelled {
        let message = n["message"].as_str().unwrap();
        assert!(!message.contains("evil.example"), "{message}");
        assert!(
            message.ends_with("was cancelled as you asked."),
            "{message}"
        );
    }
}

/// The tables of `db` (SQLite) and their columns that hold `needle`.
async fn columns_holding(db: &agora_platform::Db, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let tables = db
        .query("SELECT name FROM sqlite_master WHERE type = 'table'", &[])
        .await
        .unwrap();
    for table in tables.iter().map(|r| r.text("name").unwrap()) {
        let columns = db
            .query(
                "SELECT name FROM pragma_table_info($1)",
                agora_platform::params![&table],
            )
            .await
            .unwrap();
        for column in columns.iter().map(|r| r.text("name").unwrap()) {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM \"{table}\" WHERE CAST(\"{column}\" AS TEXT) LIKE $1"
            );
            let hits = db
                .query(&sql, agora_platform::params![format!("%{needle}%")])
                .await
                .unwrap();
            if hits[0].i64("n").unwrap() > 0 {
                found.push(format!("{table}.{column}"));
            }
        }
    }
    found
}

/// A payment token serves the payment step and is kept nowhere in clear
/// after it: not in the order, not in any service's event log, not in a
/// dead letter as an operator sees it.
#[tokio::test]
async fn a_payment_token_is_kept_only_until_the_payment_step() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let ordered = app
        .place_order(&order_body(product, 1, "tok_live_7777"))
        .await;
    let item = json!({ "product_id": product, "quantity": 1 });
    let shopper = app.customer("secret").await;
    assert_eq!(
        shopper
            .post_json("/api/v1/carts/me/items", &item)
            .await
            .status(),
        200
    );
    let checkout = json!({ "email": "ada@example.com", "shipping_address": crate::common::address(), "payment_token": "tok_live_8888" });
    let r = shopper
        .post_json("/api/v1/carts/me/checkout", &checkout)
        .await;
    assert_eq!(r.status(), 202);
    let checked_out: Uuid = r.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for id in [ordered, checked_out] {
        assert_eq!(app.terminal(id).await["status"], "COMPLETED");
    }
    app.settled().await;

    for service in agora::services::names() {
        let db =
            agora_platform::Db::open_sqlite(&app.data_dir.join(format!("{service}.db")), false)
                .unwrap();
        for token in ["tok_live_7777", "tok_live_8888"] {
            let holding = columns_holding(&db, token).await;
            assert!(holding.is_empty(), "{service} keeps {token} in {holding:?}");
        }
        db.close().await;
    }

    // A dead-lettered request keeps its token for a replay, but an
    // operator is shown a mask.
    let poison = json!({
        "specversion": "1.0", "id": Uuid::now_v7(), "type": "PaymentRequested",
        "source": "/agora/order", "subject": Uuid::now_v7(), "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "dataschema": agora_platform::events::schema_url("payment.requested.v1"),
        "eventversion": 1, "correlationid": "c", "traceparent": "00-0-0-01",
        "data": { "order_id": Uuid::now_v7(), "payment_token": "tok_live_9999", "unexpected": true }
    });
    let id = app
        .bus
        .inject("payment", "payment.requested.v1", &poison.to_string())
        .await
        .unwrap();
    app.dead_lettered("payment", 1).await;
    let shown = app
        .get_json(&format!("/api/v1/admin/dead-letters/payment/{id}"))
        .await;
    let body = shown["body"].as_str().unwrap();
    assert!(!body.contains("tok_live_9999"), "{body}");
    assert!(body.contains("****9999"), "{body}");
}

/// Every event of a saga names its payload's schema by an absolute URI
/// under the public URL, and the app serves the committed schema there.
#[tokio::test]
async fn every_event_names_its_schema_by_an_absolute_uri_that_the_app_serves() {
    use agora_platform::events::{public_url, schema_path, Envelope};
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;
    assert_eq!(app.terminal(id).await["status"], "COMPLETED");
    app.settled().await;

    let mut seen = std::collections::BTreeSet::new();
    for service in agora::services::names() {
        let db =
            agora_platform::Db::open_sqlite(&app.data_dir.join(format!("{service}.db")), false)
                .unwrap();
        let rows = db
            .query("SELECT routing_key, envelope FROM outbox", &[])
            .await
            .unwrap();
        for row in rows {
            let key = row.text("routing_key").unwrap();
            let envelope: Envelope = serde_json::from_str(&row.text("envelope").unwrap()).unwrap();
            let uri = reqwest::Url::parse(&envelope.dataschema)
                .unwrap_or_else(|e| panic!("{key}: {} is no URI: {e}", envelope.dataschema));
            assert!(uri.scheme() == "http" && uri.has_host(), "{uri}");
            let path = envelope
                .dataschema
                .strip_prefix(public_url())
                .unwrap_or_else(|| panic!("{uri} is not under {}", public_url()));
            assert_eq!(path, format!("/{}", schema_path(&key)));
            let served = app.get(path).await;
            assert_eq!(served.status(), 200, "{path}");
            let committed = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../..")
                    .join(schema_path(&key)),
            )
            .unwrap();
            assert!(served.text().await.unwrap() == committed, "{path}");
            seen.insert(key);
        }
        db.close().await;
    }
    for key in [
        "product.created.v1",
        "order.created.v1",
        "payment.succeeded.v1",
        "order.completed.v1",
    ] {
        assert!(seen.contains(key), "no {key} among {seen:?}");
    }
}

/// An envelope of an earlier release, whose `dataschema` is the relative
/// path, still waiting in a queue after an upgrade: consumed as any other.
#[tokio::test]
async fn an_event_with_the_relative_dataschema_of_earlier_releases_is_consumed() {
    use agora_platform::events::{schema_path, Envelope, ProductCreated};
    let app = spawn_app().await;
    let product = Uuid::now_v7();
    let mut envelope = Envelope::root(&ProductCreated {
        product_id: product,
        sku: format!("OLD-{}", product.simple()),
        initial_stock: 4,
    });
    envelope.dataschema = schema_path("product.created.v1");
    let body = serde_json::to_string(&envelope).unwrap();
    app.bus
        .inject("inventory", "product.created.v1", &body)
        .await
        .unwrap();
    let path = format!("/api/v1/inventory/{product}");
    app.eventually(|| async { app.get(&path).await.status() == 200 })
        .await;
    assert_eq!(app.stock(product).await["available"], 4);
    app.dead_lettered("inventory", 0).await;
}

#[tokio::test]
async fn a_held_payment_request_leaves_the_order_reserved_until_the_hold_is_released() {
    // Arrange: payment is told to hold back this customer's requests.
    let app = spawn_app().await;
    let product = app.create_product(1_000, 5).await;
    let ada = app.customer("ada").await;
    let needle = format!("\"customer_id\":\"{}\"", ada.own_id().await);
    app.bus
        .hold("slow payment", "payment", "payment.requested.v1", &needle)
        .await
        .unwrap();

    // Act: she orders; someone else orders too.
    let held = ada.place_order(&order_body(product, 1, "tok_visa")).await;
    let other = app.place_order(&order_body(product, 1, "tok_visa")).await;

    // Assert: the other order goes through, hers waits for its payment
    // (reserved), parked in payment's queue, until the hold ends.
    assert_eq!(app.terminal(other).await["status"], "COMPLETED");
    app.reaches(held, "RESERVED").await;
    let payment = ["payment".to_owned()];
    app.eventually(|| async { app.bus.depths(&payment).await.unwrap()[0].1 == 1 })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.order(held).await["status"], "RESERVED");
    assert_eq!(app.bus.depths(&payment).await.unwrap()[0].1, 1);

    app.bus.release("slow payment").await.unwrap();
    assert_eq!(app.terminal(held).await["status"], "COMPLETED");
    app.settled().await;
    app.assert_audit_clean().await;
}
