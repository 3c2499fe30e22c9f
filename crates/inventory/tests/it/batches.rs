//! Batches of events in one transaction, on SQLite and PostgreSQL: the
//! events move stock in their order and the changed rows are written once;
//! and on two instances at once (PostgreSQL; SQLite has one writer), a
//! batch takes the stock rows it may change in one order, so two batches
//! over the same products never deadlock.

use std::time::Duration;

use agora_inventory::handlers::Handler;
use agora_inventory::store;
use agora_platform::consumer::EventHandler;
use agora_platform::events::{
    Envelope, OrderCancelled, OrderCompleted, OrderCreated, ProductCreated,
};
use agora_platform::outbox;
use agora_platform::Db;
use agora_testing::backends;
use serde_json::json;
use uuid::Uuid;

fn order_created(product_id: Uuid) -> Envelope {
    let event: OrderCreated = serde_json::from_value(json!({
        "order_id": Uuid::now_v7(), "customer_id": "c-1", "email": "c1@example.com",
        "items": [{ "product_id": product_id, "sku": "SKU", "name": "Mug",
                    "quantity": 1, "unit_price": 900 }],
        "total": { "amount": 900, "currency": "EUR" },
        "shipping_address": { "name": "A", "line1": "1 St", "city": "Berlin",
                              "postal_code": "10115", "country": "DE" },
    }))
    .unwrap();
    Envelope::root(&event)
}

/// Handles `events` as one batch in its own transaction.
async fn handle_batch(db: Db, events: Vec<Envelope>) -> Result<(), String> {
    let handler = Handler {
        reservation_ttl: Duration::from_secs(600),
    };
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    let events: Vec<&Envelope> = events.iter().collect();
    handler
        .handle_all(&mut tx, &events)
        .await
        .map_err(|e| format!("{e:?}"))?;
    tx.commit().await.map_err(|e| e.to_string())
}

agora_testing::each_backend! {
    async fn two_batches_over_the_same_products_in_opposite_order_both_commit() {
        for t in backends(&[outbox::MIGRATIONS, agora_inventory::MIGRATIONS]).await {
            if t.backend != "postgres" {
                t.cleanup().await;
                continue;
            }
            // Arrange: two products, and a transaction holding both rows, so
            // that both batches start waiting and are let go at the same moment.
            let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
            let mut tx = t.db.begin().await.unwrap();
            store::create_stock(&mut tx, a, "SKU-A", 10).await.unwrap();
            store::create_stock(&mut tx, b, "SKU-B", 10).await.unwrap();
            tx.commit().await.unwrap();
            let mut holder = t.db.begin().await.unwrap();
            store::lock_levels(&mut holder, &[a, b].into())
                .await
                .unwrap();

            // Act: batch one reserves a then b, batch two b then a. Each event
            // alone would lock its product first: one waits for a, the other for
            // b, and once let go each would wait for the other's row.
            let one = tokio::spawn(handle_batch(
                t.db.clone(),
                vec![order_created(a), order_created(b)],
            ));
            let two = tokio::spawn(handle_batch(
                t.db.clone(),
                vec![order_created(b), order_created(a)],
            ));
            tokio::time::sleep(Duration::from_millis(300)).await;
            holder.commit().await.unwrap();
            let (one, two) = (one.await.unwrap(), two.await.unwrap());

            // Assert: both commit (no deadlock victim), and all four reserved.
            assert_eq!((one, two), (Ok(()), Ok(())));
            for product in [a, b] {
                let stock = store::find(&t.db, product).await.unwrap().unwrap();
                assert_eq!((stock.available, stock.reserved), (8, 2), "{stock:?}");
            }
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn one_batch_opens_reserves_sells_and_releases_stock_in_event_order() {
        for t in backends(&[outbox::MIGRATIONS, agora_inventory::MIGRATIONS]).await {
            // Arrange: a new product with 5 units, two orders of one unit, the
            // first completed and the second cancelled, all in one batch.
            let product = Uuid::now_v7();
            let opened = Envelope::root(&ProductCreated {
                product_id: product,
                sku: "SKU-N".into(),
                initial_stock: 5,
            });
            let (first, second) = (order_created(product), order_created(product));
            let order_of = |e: &Envelope| e.decode::<OrderCreated>().unwrap().order_id;
            let completed = Envelope::root(&OrderCompleted {
                order_id: order_of(&first),
            });
            let cancelled = Envelope::root(&OrderCancelled {
                order_id: order_of(&second),
                reason: "changed my mind".into(),
                code: agora_platform::events::CancelCode::CustomerRequest,
            });

            // Act
            let handled = handle_batch(
                t.db.clone(),
                vec![opened, first, second, completed, cancelled],
            )
            .await;

            // Assert: one unit sold, one back on the shelf, none held.
            assert_eq!(handled, Ok(()), "{}", t.backend);
            let stock = store::find(&t.db, product).await.unwrap().unwrap();
            assert_eq!(
                (stock.available, stock.reserved, stock.sold),
                (4, 0, 1),
                "{}: {stock:?}",
                t.backend
            );
            assert!(stock.is_conserved(), "{}: {stock:?}", t.backend);
            t.cleanup().await;
        }
    }
}
