//! Two instances of the order service on one PostgreSQL database (SQLite
//! has one process): a client waiting on one instance learns at once that
//! the other moved its order to a terminal state, and a batch never
//! overwrites what the other instance wrote after the batch read.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{dbs, mug, pending_order};
use agora_catalog::Catalog;
use agora_order::domain::{Input, OrderStatus};
use agora_order::{store, Cause, Orders, Step};
use agora_platform::auth::{Account, Role};
use agora_testing::TestDb;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Two order instances on one fresh PostgreSQL database and a product to
/// order; none without PostgreSQL.
async fn two_instances() -> Option<(TestDb, Orders, Orders, Uuid)> {
    let mut found = None;
    for t in dbs().await {
        if t.backend != "postgres" {
            t.cleanup().await;
            continue;
        }
        let catalog = Arc::new(Catalog::new(t.db.clone()));
        let product = mug(&catalog).await;
        let here = Orders::new(t.db.clone(), catalog.clone());
        let there = Orders::new(t.db.clone(), catalog);
        found = Some((t, here, there, product.id));
    }
    found
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_waiter_hears_of_a_terminal_state_reached_on_another_instance() {
    if let Some((t, mut here, there, product)) = two_instances().await {
        // Arrange: instance `here` never re-reads by itself, so only a
        // notice from instance `there` can end its wait early.
        here.recheck_every = Duration::from_secs(3600);
        let shutdown = CancellationToken::new();
        let listener = tokio::spawn({
            let here = here.clone();
            let shutdown = shutdown.clone();
            async move { here.follow_other_instances(shutdown).await }
        });
        let order = pending_order(&there, product, 1).await;
        let waiter = tokio::spawn({
            let here = here.clone();
            async move { here.wait_terminal(order.id, Duration::from_secs(120)).await }
        });
        // Both the listener and the waiter's first read are done by then.
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Act: the other instance rejects the order.
        let mut tx = t.db.begin().await.unwrap();
        let step = there
            .advance(
                &mut tx,
                order.id,
                Input::StockRejected {
                    reason: "none left".into(),
                },
                Cause::Internal,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // Assert: the waiter answers long before its 120 s are up.
        assert_eq!(step, Step::Moved(OrderStatus::Rejected));
        let heard = tokio::time::timeout(Duration::from_secs(20), waiter)
            .await
            .expect("the waiter was not told of the change")
            .unwrap()
            .unwrap();
        assert_eq!(heard, Some(OrderStatus::Rejected));
        shutdown.cancel();
        listener.await.unwrap();
        t.cleanup().await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_batch_does_not_overwrite_a_move_made_after_it_read_the_order() {
    if let Some((t, here, there, product)) = two_instances().await {
        // Arrange: instance `here` reads a PENDING order for a batch; then
        // instance `there` cancels it and commits.
        let order = pending_order(&there, product, 1).await;
        let mut batch = t.db.begin().await.unwrap();
        let mut read = store::find_many_in(&mut batch, &[order.id]).await.unwrap();
        let mut cancel = t.db.begin().await.unwrap();
        there
            .cancel_in(&mut cancel, order.id, "changed my mind".into(), &customer())
            .await
            .unwrap();
        cancel.commit().await.unwrap();

        // Act: the batch moves its stale copy on and writes it.
        let stale = read.get_mut(&order.id).unwrap();
        let step = here
            .advance_loaded(&mut batch, stale, Input::StockReserved, Cause::Internal)
            .await
            .unwrap();
        let conflicts = store::save(&mut batch, read.values_mut()).await.unwrap();
        drop(batch);

        // Assert: the write is refused and the cancellation stands.
        assert_eq!(step, Step::Moved(OrderStatus::Reserved));
        assert_eq!(conflicts, [order.id]);
        let found = store::find(&t.db, order.id).await.unwrap().unwrap();
        assert_eq!(found.status, OrderStatus::Cancelled);
        t.cleanup().await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn two_compensations_confirmed_on_two_instances_at_once_both_count() {
    if let Some((t, here, there, product)) = two_instances().await {
        // Arrange: a paid order cancelled, so COMPENSATING and awaiting the
        // stock release and the refund; a batch on each instance reads it.
        let order = pending_order(&there, product, 1).await;
        let cancel = Input::CancelRequested {
            reason: "changed my mind".into(),
        };
        for input in [Input::StockReserved, Input::PaymentSucceeded, cancel] {
            let mut tx = t.db.begin().await.unwrap();
            there
                .advance(&mut tx, order.id, input, Cause::Internal)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let mut first = t.db.begin().await.unwrap();
        let mut read_first = store::find_many_in(&mut first, &[order.id]).await.unwrap();
        let mut second = t.db.begin().await.unwrap();
        let mut read_second = store::find_many_in(&mut second, &[order.id]).await.unwrap();

        // Act: the first confirms the release and commits, then the second
        // confirms the refund on what it read before.
        let stale = read_first.get_mut(&order.id).unwrap();
        here.advance_loaded(&mut first, stale, Input::StockReleased, Cause::Internal)
            .await
            .unwrap();
        let first_conflicts = store::save(&mut first, read_first.values_mut())
            .await
            .unwrap();
        first.commit().await.unwrap();
        let stale = read_second.get_mut(&order.id).unwrap();
        there
            .advance_loaded(&mut second, stale, Input::PaymentRefunded, Cause::Internal)
            .await
            .unwrap();
        let second_conflicts = store::save(&mut second, read_second.values_mut())
            .await
            .unwrap();
        drop(second);

        // Assert: the second write is refused, and tried again it finds
        // nothing else awaited and cancels the order.
        assert!(first_conflicts.is_empty());
        assert_eq!(second_conflicts, [order.id]);
        let mut retry = t.db.begin().await.unwrap();
        let step = there
            .advance(
                &mut retry,
                order.id,
                Input::PaymentRefunded,
                Cause::Internal,
            )
            .await
            .unwrap();
        retry.commit().await.unwrap();
        assert_eq!(step, Step::Moved(OrderStatus::Cancelled));
        t.cleanup().await;
    }
}

/// The customer who cancels in these tests.
fn customer() -> Account {
    Account {
        id: Uuid::nil(),
        role: Role::Customer,
    }
}
