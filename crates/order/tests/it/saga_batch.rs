//! A batch of saga events applied in one transaction, on SQLite and
//! PostgreSQL: the orders are read once for the whole batch, and a second
//! event for the same order sees what the first one did.

use std::sync::Arc;

use crate::common::{dbs, mug, pending_order};
use agora_catalog::Catalog;
use agora_order::domain::OrderStatus;
use agora_order::handlers::Handler;
use agora_order::{store, Orders};
use agora_platform::consumer::apply_in;
use agora_platform::events::{Envelope, LineItem, PaymentSucceeded, StockReserved};
use uuid::Uuid;

agora_testing::each_backend! {
    async fn one_batch_moves_an_order_through_consecutive_steps() {
        for t in dbs().await {
            // Arrange: a PENDING order.
            let catalog = Catalog::new(t.db.clone());
            let product = mug(&catalog).await;
            let orders = Orders::new(t.db.clone(), Arc::new(catalog));
            let order = pending_order(&orders, product.id, 2).await;

            // Act: stock reserved and payment taken, delivered together.
            let reserved = Envelope::root(&StockReserved {
                order_id: order.id,
                items: vec![LineItem {
                    product_id: product.id,
                    quantity: 2,
                }],
            });
            let paid = Envelope::root(&PaymentSucceeded {
                order_id: order.id,
                payment_id: Uuid::now_v7(),
                amount: order.total.clone(),
            });
            let handler = Handler {
                orders: orders.clone(),
            };
            let mut tx = t.db.begin().await.unwrap();
            let applied = apply_in(&mut tx, &handler, &[&reserved, &paid])
                .await
                .unwrap();
            tx.commit().await.unwrap();

            // Assert: both steps happened, in order, each with its event.
            assert_eq!(applied, 2, "{}", t.backend);
            let found = store::find(&t.db, order.id).await.unwrap().unwrap();
            assert_eq!(found.status, OrderStatus::Paid, "{}", t.backend);
            let steps: Vec<_> = store::timeline(&t.db, order.id)
                .await
                .unwrap()
                .iter()
                .map(|e| e.to)
                .collect();
            assert_eq!(
                steps,
                [
                    OrderStatus::Pending,
                    OrderStatus::Reserved,
                    OrderStatus::Paid
                ],
                "{}",
                t.backend
            );
            let emitted: Vec<String> =
                t.db.query(
                    "SELECT routing_key FROM outbox WHERE subject = $1 ORDER BY id",
                    agora_platform::params![order.id],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.text("routing_key").unwrap())
                .collect();
            assert_eq!(
                emitted,
                [
                    "order.created.v1",
                    "payment.requested.v1",
                    "shipping.requested.v1"
                ],
                "{}",
                t.backend
            );
            t.cleanup().await;
        }
    }
}
