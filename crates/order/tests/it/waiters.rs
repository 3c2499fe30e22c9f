//! Clients waiting for an order to end (`GET /orders/{id}?wait_ms`): at
//! most `max_waiters` wait at once, the others are answered at once, and
//! a client that goes away stops counting at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{dbs, mug, pending_order};
use agora_catalog::Catalog;
use agora_order::domain::OrderStatus;
use agora_order::Orders;

agora_testing::each_backend! {
    async fn past_the_cap_a_waiter_is_answered_at_once_and_a_gone_one_leaves_at_once() {
        for t in dbs().await {
            // Arrange: an order that stays PENDING, and room for three waiters.
            let catalog = Arc::new(Catalog::new(t.db.clone()));
            let product = mug(&catalog).await;
            let mut orders = Orders::new(t.db.clone(), catalog);
            orders.max_waiters = 3;
            let order = pending_order(&orders, product.id, 1).await;

            // Act: ten clients ask to wait two seconds.
            let started = Instant::now();
            let waiters: Vec<_> = (0..10)
                .map(|_| {
                    let orders = orders.clone();
                    tokio::spawn(async move {
                        let status = orders
                            .wait_terminal(order.id, Duration::from_secs(2))
                            .await
                            .unwrap();
                        (status, started.elapsed())
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for waiter in waiters {
                answers.push(waiter.await.unwrap());
            }

            // Assert: three waited, seven were answered with the order as it was.
            let waited = answers
                .iter()
                .filter(|(_, after)| *after >= Duration::from_secs(2))
                .count();
            assert_eq!(waited, 3, "{}: {answers:?}", t.backend);
            assert!(answers
                .iter()
                .all(|(status, _)| *status == Some(OrderStatus::Pending)));
            assert_eq!(orders.waiting(), 0, "{}", t.backend);

            // A client that disconnects drops its wait: it counts out at once.
            let gone = tokio::time::timeout(
                Duration::from_millis(100),
                orders.wait_terminal(order.id, Duration::from_secs(30)),
            )
            .await;
            assert!(gone.is_err(), "the wait was cut short");
            assert_eq!(orders.waiting(), 0, "{}", t.backend);
            let full = (0..3).map(|_| {
                let orders = orders.clone();
                tokio::spawn(async move {
                    orders
                        .wait_terminal(order.id, Duration::from_secs(30))
                        .await
                })
            });
            let full: Vec<_> = full.collect();
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(orders.waiting(), 3, "{}", t.backend);
            for waiter in full {
                waiter.abort();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                orders.waiting(),
                0,
                "{}: aborted waiters count out",
                t.backend
            );
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn tokens_an_earlier_release_kept_past_pending_are_masked_at_start() {
        for t in dbs().await {
            let catalog = Arc::new(Catalog::new(t.db.clone()));
            let product = mug(&catalog).await;
            let orders = Orders::new(t.db.clone(), catalog);
            let pending = pending_order(&orders, product.id, 1).await;
            let paid = pending_order(&orders, product.id, 1).await;
            let mut tx = t.db.begin().await.unwrap();
            tx.execute(
                "UPDATE orders SET status = 'PAID' WHERE id = $1",
                agora_platform::params![paid.id],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();

            assert_eq!(
                agora_order::store::mask_spent_tokens(&t.db).await.unwrap(),
                1
            );

            let token = |id: uuid::Uuid| {
                let db = t.db.clone();
                async move {
                    db.query_opt(
                        "SELECT payment_token FROM orders WHERE id = $1",
                        agora_platform::params![id],
                    )
                    .await
                    .unwrap()
                    .unwrap()
                    .text("payment_token")
                    .unwrap()
                }
            };
            assert_eq!(token(paid.id).await, "****visa", "{}", t.backend);
            assert_eq!(
                token(pending.id).await,
                "tok_visa",
                "{}: still needed",
                t.backend
            );
            t.cleanup().await;
        }
    }
}
