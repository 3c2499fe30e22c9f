//! The distributed mode against the machine's real PostgreSQL and RabbitMQ:
//! every service its own process, the gateway in front. Ignored (not passed) when
//! AGORA_TEST_DATABASE_URL / AGORA_TEST_AMQP_URL are not set; CI sets them and
//! AGORA_REQUIRE_SERVERS=1, so there it always runs.

use std::sync::Arc;

use crate::common::cluster::{services, Cluster};
use crate::common::{assert_conserved, order_body};
use agora_platform::outbox::OutboxRecord;
use agora_platform::transport::Publisher;
use serde_json::json;

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn the_saga_and_its_compensations_across_processes() {
    let cluster = Cluster::start(&[]).await;
    let product = cluster.create_product(2_000, 10).await;

    let paid = cluster
        .place_order(&order_body(product, 3, "tok_visa"))
        .await;
    let declined = cluster
        .place_order(&order_body(product, 2, "tok_decline"))
        .await;
    // More than the stock: refused at the door by the stock check, for an
    // order placed and for a cart checked out (the cart service asks the
    // inventory service too; the cart is kept).
    assert_eq!(
        cluster
            .try_order(&order_body(product, 50, "tok_visa"))
            .await,
        None
    );
    let item = json!({ "product_id": product, "quantity": 50 });
    let big = cluster.customer("big").await;
    assert_eq!(
        big.post_json("/api/v1/carts/me/items", &item)
            .await
            .status(),
        200
    );
    let checkout = json!({ "email": "ada@example.com", "shipping_address": crate::common::address(), "payment_token": "tok_visa" });
    let r = big.post_json("/api/v1/carts/me/checkout", &checkout).await;
    assert_eq!(r.status(), 409);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "items[0].quantity");
    // One that raced past the check (its event is delivered straight to the
    // order service): the saga itself rejects it.
    let customer = cluster.customer_id("big").await;
    let (too_many, event) = crate::common::checkout::checked_out(&customer, &[product]);
    let event = event.replace("\"quantity\":1", "\"quantity\":50");
    assert!(event.contains("\"quantity\":50"));
    let raced = OutboxRecord {
        id: uuid::Uuid::now_v7().to_string(),
        routing_key: "cart.checked_out.v1".into(),
        envelope: event,
    };
    agora_platform::amqp::deliver_to(cluster.broker().config(), "order", &[raced])
        .await
        .unwrap();
    cluster
        .eventually(|| async {
            cluster
                .get(&format!("/api/v1/orders/{too_many}"))
                .await
                .status()
                == 200
        })
        .await;

    let order = cluster.terminal(paid).await;
    assert_eq!(order["status"], "COMPLETED");
    let steps: Vec<_> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].clone())
        .collect();
    assert_eq!(
        steps,
        [
            json!("PENDING"),
            json!("RESERVED"),
            json!("PAID"),
            json!("COMPLETED")
        ]
    );
    assert_eq!(
        cluster
            .list(&format!("/api/v1/payments?order_id={paid}"))
            .await
            .len(),
        1
    );
    assert_eq!(
        cluster
            .list(&format!("/api/v1/shipments?order_id={paid}"))
            .await
            .len(),
        1
    );
    cluster
        .eventually(|| async {
            cluster
                .list(&format!("/api/v1/notifications?order_id={paid}"))
                .await
                .len()
                == 6
        })
        .await;

    let order = cluster.terminal(declined).await;
    assert_eq!(order["status"], "CANCELLED");
    assert!(order["reason"].as_str().unwrap().contains("payment failed"));
    assert_eq!(cluster.terminal(too_many).await["status"], "REJECTED");

    // The declined order's stock comes back; the paid order's is sold.
    cluster
        .eventually(|| async {
            let stock = cluster.stock(product).await;
            stock["reserved"] == 0 && stock["sold"] == 3 && stock["available"] == 7
        })
        .await;
    assert_conserved(&cluster.stock(product).await);
    cluster.assert_audit_clean().await;
    schemas_resolve_through_the_gateway(&cluster, agora_order::NAME).await;
    cluster.stop().await;
}

/// The events `service` emitted name their schema by an absolute URI
/// under the deployment's public URL (the gateway's), and fetching that
/// URI gives the committed schema.
async fn schemas_resolve_through_the_gateway(cluster: &Cluster, service: &str) {
    let db = agora_platform::Db::connect_postgres(&cluster.database_url(service), 1)
        .await
        .unwrap();
    let rows = db
        .query("SELECT routing_key, envelope FROM outbox", &[])
        .await
        .unwrap();
    db.close().await;
    assert!(!rows.is_empty(), "{service} emitted nothing");
    for row in rows {
        let key = row.text("routing_key").unwrap();
        let envelope: agora_platform::Envelope =
            serde_json::from_str(&row.text("envelope").unwrap()).unwrap();
        let uri = &envelope.dataschema;
        assert!(
            uri.starts_with(&format!("{}/", cluster.public_url())),
            "{key}: {uri}"
        );
        let fetched = cluster.client.get(uri).send().await.unwrap();
        assert_eq!(fetched.status(), 200, "{uri}");
        let committed = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(agora_platform::events::schema_path(&key)),
        )
        .unwrap();
        assert!(fetched.text().await.unwrap() == committed, "{uri}");
    }
}

/// Two instances each of order, inventory and payment compete for the same
/// queues: 200 orders race for 50 units, exactly 50 are sold, none is
/// charged twice.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn competing_instances_never_oversell_or_charge_twice() {
    let cluster = Cluster::start(&[("order", 2), ("inventory", 2), ("payment", 2)]).await;
    let cluster = Arc::new(cluster);
    let product = cluster.create_product(1_000, 50).await;

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let id = cluster.try_order(&order_body(product, 1, "tok_visa")).await;
            let status = match id {
                Some(id) => cluster.terminal(id).await["status"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                None => "REFUSED".to_owned(),
            };
            (id, status)
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    let completed: Vec<_> = outcomes
        .iter()
        .filter(|(_, s)| s == "COMPLETED")
        .map(|(id, _)| id.expect("a completed order was accepted"))
        .collect();
    let rejected = outcomes
        .iter()
        .filter(|(_, s)| s == "REJECTED" || s == "REFUSED")
        .count();
    assert_eq!((completed.len(), rejected), (50, 150));
    for id in &completed {
        let payments = cluster
            .list(&format!("/api/v1/payments?order_id={id}"))
            .await;
        assert_eq!(
            payments.len(),
            1,
            "order {id} charged {} times",
            payments.len()
        );
    }
    cluster
        .eventually(|| async {
            let stock = cluster.stock(product).await;
            stock["sold"] == 50 && stock["reserved"] == 0 && stock["available"] == 0
        })
        .await;
    assert_conserved(&cluster.stock(product).await);
    cluster.assert_audit_clean().await;
    Arc::try_unwrap(cluster)
        .ok()
        .expect("tasks are done")
        .stop()
        .await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_poison_message_lands_in_the_dead_letter_queue_and_the_consumers_go_on() {
    let cluster = Cluster::start(&[]).await;
    let broker = cluster.broker();
    let poison = OutboxRecord {
        id: uuid::Uuid::now_v7().to_string(),
        routing_key: "order.created.v1".into(),
        envelope: "{ this is not an event".into(),
    };
    broker.publish(&[poison]).await.unwrap();

    cluster
        .eventually(|| async { broker.dead_letter_count("inventory").await.unwrap_or(0) == 1 })
        .await;
    cluster
        .eventually(|| async { broker.dead_letter_count("notification").await.unwrap_or(0) == 1 })
        .await;

    // Operators see it through the gateway, with the reason, and can purge it.
    let letters = cluster
        .list("/api/v1/admin/dead-letters?service=inventory")
        .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["routing_key"], "order.created.v1");
    assert!(letters[0]["error"]
        .as_str()
        .unwrap()
        .contains("not an event envelope"));
    let purge = cluster.url("/api/v1/admin/dead-letters/purge?service=inventory");
    assert_eq!(
        cluster.client.post(purge).send().await.unwrap().status(),
        200
    );
    assert_eq!(broker.dead_letter_count("inventory").await.unwrap(), 0);
    assert_eq!(broker.dead_letter_count("notification").await.unwrap(), 1);
    let product = cluster.create_product(1_000, 5).await;
    let id = cluster
        .place_order(&order_body(product, 1, "tok_visa"))
        .await;
    assert_eq!(cluster.terminal(id).await["status"], "COMPLETED");
    cluster.stop().await;
}

/// One idempotency key, many clients, two order instances: one order.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn one_idempotency_key_makes_one_order_across_instances() {
    let cluster = Cluster::start(&[("order", 2)]).await;
    let cluster = Arc::new(cluster);
    let product = cluster.create_product(1_000, 100).await;
    let body = order_body(product, 1, "tok_visa");
    let shopper = cluster.customer("cust-1").await;

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (shopper, body) = (shopper.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            shopper
                .post_with_key("/api/v1/orders", "one-key", &body)
                .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (status, order, _) = task.await.unwrap();
        assert_eq!(status, 201, "{order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }

    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(cluster.orders_of("cust-1").await.len(), 1);
    Arc::try_unwrap(cluster)
        .ok()
        .expect("tasks are done")
        .stop()
        .await;
}

/// Inventory goes down: the order service's stock check fails, its breaker
/// opens (visible on /ready), orders are still accepted, and they complete
/// once inventory is back.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn orders_are_accepted_while_inventory_is_down_and_complete_when_it_returns() {
    let cluster = Cluster::start(&[]).await;
    let product = cluster.create_product(1_000, 100).await;
    cluster.kill("inventory").await;

    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(
            cluster
                .place_order(&order_body(product, 1, "tok_visa"))
                .await,
        );
    }

    let ready: serde_json::Value = cluster
        .client
        .get(format!("{}/ready", cluster.instance_url("order")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let breaker = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "breaker inventory-stock-check")
        .unwrap()
        .clone();
    assert_eq!(breaker["state"], "open", "{ready}");
    for id in &ids {
        assert_eq!(cluster.order(*id).await["status"], "PENDING");
    }

    cluster.restart("inventory").await;
    for id in &ids {
        assert_eq!(cluster.terminal(*id).await["status"], "COMPLETED");
    }
    cluster
        .eventually(|| async { cluster.stock(product).await["sold"] == 8 })
        .await;
    cluster.assert_audit_clean().await;
    cluster.stop().await;
}

/// Poison published straight into every service's queue: each lands in its
/// own dead-letter queue and the saga goes on.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn poison_in_every_queue_is_dead_lettered() {
    let cluster = Cluster::start(&[]).await;
    let broker = cluster.broker();
    let consumers = ["inventory", "order", "payment", "shipping", "notification"];
    for consumer in consumers {
        let poison = OutboxRecord {
            id: uuid::Uuid::now_v7().to_string(),
            routing_key: "order.created.v1".into(),
            envelope: "poison".into(),
        };
        agora_platform::amqp::deliver_to(broker.config(), consumer, &[poison])
            .await
            .unwrap();
    }
    for consumer in consumers {
        cluster
            .eventually(|| async { broker.dead_letter_count(consumer).await.unwrap_or(0) == 1 })
            .await;
    }
    let product = cluster.create_product(1_000, 5).await;
    let id = cluster
        .place_order(&order_body(product, 1, "tok_visa"))
        .await;
    assert_eq!(cluster.terminal(id).await["status"], "COMPLETED");
    cluster.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn every_process_stopped_with_sigterm_exits_cleanly_and_logs_no_error() {
    let cluster = Cluster::start(&[]).await;
    // One order through first, so every service holds its broker
    // connections (consuming and publishing) when it is told to stop.
    let product = cluster.create_product(1_000, 5).await;
    let id = cluster
        .place_order(&order_body(product, 1, "tok_visa"))
        .await;
    assert_eq!(cluster.terminal(id).await["status"], "COMPLETED");

    for process in services().into_iter().chain(["gateway"]) {
        let (status, logged) = cluster.terminate(process).await;

        assert!(status.success(), "{process} exited with {status}");
        let errors: Vec<&String> = logged.iter().filter(|l| l.contains(" ERROR ")).collect();
        assert!(
            errors.is_empty(),
            "{process} logged errors while stopping: {errors:#?}"
        );
    }
    cluster.stop().await;
}

/// A fresh deployment starts in any order: events published before their
/// consumer ever ran wait in its queue (declared by the publisher) instead
/// of being confirmed into the void and marked published.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn events_published_before_their_consumer_first_started_are_delivered() {
    let mut cluster = Cluster::empty().await;
    cluster.start_service("identity", 1).await;
    cluster.start_service("catalog", 1).await;
    // The catalog verifies the admin's token with the keys it fetches from
    // identity, the one service started before it.
    let token = crate::common::Api::at(&cluster.instance_url("identity"))
        .token_of(crate::common::ADMIN.0, crate::common::ADMIN.1)
        .await;
    let catalog = crate::common::Api::at(&cluster.instance_url("catalog")).with_token(&token);
    let mut expected: Vec<(uuid::Uuid, i64)> = agora_catalog::domain::demo_products()
        .into_iter()
        .map(|(id, p)| (id, i64::from(p.initial_stock)))
        .collect();
    for stock in [3, 5, 8] {
        let sku = format!("EARLY-{}", uuid::Uuid::now_v7().simple()).to_uppercase();
        let body = json!({ "name": "Early", "sku": sku, "price": { "amount": 100, "currency": "EUR" }, "initial_stock": stock });
        let r = catalog.post_json("/api/v1/products", &body).await;
        assert_eq!(r.status(), 201);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        expected.push((id, stock));
    }
    // The catalog's relay has handed every event to the broker (nothing is
    // left unpublished in its outbox) while no inventory ever ran.
    let outbox = agora_platform::Db::connect_postgres(&cluster.database_url("catalog"), 1)
        .await
        .unwrap();
    catalog
        .eventually(|| async {
            let left = outbox
                .query_opt(
                    "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
                    &[],
                )
                .await
                .unwrap()
                .unwrap();
            left.i64("n").unwrap() == 0
        })
        .await;
    outbox.close().await;

    cluster.start_service("inventory", 1).await;
    let inventory = crate::common::Api::at(&cluster.instance_url("inventory"));
    for (product, stock) in expected {
        inventory
            .eventually(|| async {
                inventory
                    .get(&format!("/api/v1/inventory/{product}"))
                    .await
                    .status()
                    == 200
            })
            .await;
        assert_eq!(inventory.stock(product).await["available"], stock);
    }
    cluster.stop().await;
}

/// A retry is answered from its key before anything is priced: with the
/// catalog down (and an order instance that never saw the product), the
/// client still gets the original 201 and body.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn an_idempotent_retry_during_a_catalog_outage_gets_the_original_answer() {
    let cluster = Cluster::start(&[]).await;
    let product = cluster.create_product(1_000, 5).await;
    let body = order_body(product, 1, "tok_visa");
    let (status, first, _) = cluster
        .post_with_key("/api/v1/orders", "during-outage", &body)
        .await;
    assert_eq!(status, 201);

    cluster.kill("catalog").await;
    // A fresh order process remembers no product: it would have to ask.
    cluster.kill("order").await;
    cluster.restart("order").await;
    cluster.instance_ready("order").await;
    let (status, again, replayed) = cluster
        .post_with_key("/api/v1/orders", "during-outage", &body)
        .await;

    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, first);
    cluster.stop().await;
}

/// The same answers as the embedded mode, with PostgreSQL behind: a NUL
/// character is a 422 naming its field, never a 503.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn every_text_field_refuses_control_characters_on_postgresql_too() {
    let cluster = Cluster::start(&[]).await;
    let product = cluster.create_product(1_000, 10).await;
    crate::common::bad_input::every_text_field_is_checked(&cluster, product).await;
    crate::common::bad_input::text_is_stored_trimmed(&cluster, product).await;
    cluster.stop().await;
}

/// Through RabbitMQ: the order service's refusal of a checked-out cart
/// reaches the cart service, which takes its lines back.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_checkout_the_order_service_refuses_restores_the_cart_across_processes() {
    let cluster = Cluster::start(&[]).await;
    crate::common::checkout::a_cart_refuses_a_product_in_another_currency(&cluster).await;
    let eur = cluster.create_product_in(1_000, "EUR", 5).await;
    let usd = cluster.create_product_in(1_000, "USD", 5).await;
    let customer = "refused-checkout";
    let (order_id, envelope) =
        crate::common::checkout::checked_out(&cluster.customer_id(customer).await, &[eur, usd]);
    let event = OutboxRecord {
        id: uuid::Uuid::now_v7().to_string(),
        routing_key: "cart.checked_out.v1".into(),
        envelope,
    };
    cluster.broker().publish(&[event]).await.unwrap();

    crate::common::checkout::the_refused_checkout_is_rejected_and_the_cart_restored(
        &cluster, order_id, customer, 2,
    )
    .await;
    cluster.assert_audit_clean().await;
    cluster.stop().await;
}

/// The same paging on PostgreSQL.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn every_list_is_paged_on_postgresql_too() {
    let cluster = Cluster::start(&[]).await;
    crate::common::paging::every_list_is_paged(&cluster).await;
    cluster.stop().await;
}
