//! An order cancelled before its payment was asked for: the void recorded
//! in the payment's place holds no amount, and a late request never charges.

use agora_payment::domain::{Gateway, Record};
use agora_payment::{store, Payments, MIGRATIONS};
use agora_platform::db::{Db, Migration};
use agora_platform::events::{CancelCode, Envelope, Money, OrderCancelled, PaymentRequested};
use agora_platform::http::Page;
use agora_platform::{outbox, params};
use agora_testing::backends;
use uuid::Uuid;

fn cancelled(order_id: Uuid) -> Envelope {
    Envelope::root(&OrderCancelled {
        order_id,
        reason: "changed my mind".into(),
        code: CancelCode::CustomerRequest,
    })
}

fn requested(order_id: Uuid) -> Envelope {
    Envelope::root(&PaymentRequested {
        order_id,
        customer_id: "c-1".into(),
        amount: Money {
            amount: 1_500,
            currency: "EUR".into(),
        },
        payment_token: "tok_visa".into(),
    })
}

async fn cancel(db: &Db, order_id: Uuid) {
    let event = cancelled(order_id);
    let mut tx = db.begin().await.unwrap();
    Payments::refund_in(&mut tx, event.decode().unwrap(), &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn charge(db: &Db, order_id: Uuid) {
    let event = requested(order_id);
    let mut tx = db.begin().await.unwrap();
    Payments::charge_in(
        &mut tx,
        &Gateway::default(),
        event.decode().unwrap(),
        &event,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// `(status, amount, currency)` of each of the order's rows.
async fn rows_of(db: &Db, order_id: Uuid) -> Vec<(String, Option<i64>, Option<String>)> {
    db.query(
        "SELECT status, amount, currency FROM payments WHERE order_id = $1",
        params![order_id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.text("status").unwrap(),
            r.opt_i64("amount").unwrap(),
            r.opt_text("currency").unwrap(),
        )
    })
    .collect()
}

/// The routing keys of the events the order's payment announced.
async fn announced(db: &Db, order_id: Uuid) -> Vec<String> {
    db.query(
        "SELECT routing_key FROM outbox WHERE subject = $1 ORDER BY id",
        params![order_id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.text("routing_key").unwrap())
    .collect()
}

agora_testing::each_backend! {
    async fn a_cancellation_before_the_payment_leaves_a_void_and_a_late_request_never_charges() {
        for t in backends(&[outbox::MIGRATIONS, MIGRATIONS]).await {
            let order_id = Uuid::now_v7();

            // Act: the cancellation overtakes the payment request.
            cancel(&t.db, order_id).await;

            // Assert: a void, with no amount or currency.
            assert_eq!(
                rows_of(&t.db, order_id).await,
                [("VOIDED".into(), None, None)],
                "{}",
                t.backend
            );
            let mut tx = t.db.begin().await.unwrap();
            match store::find_by_order(&mut tx, order_id).await.unwrap() {
                Some(Record::Voided(void)) => {
                    assert_eq!(void.order_id, order_id, "{}", t.backend);
                    assert_eq!(void.reason, "changed my mind", "{}", t.backend);
                }
                other => panic!("{}: expected a void, got {other:?}", t.backend),
            }
            drop(tx);

            // Act: the late request, and the cancellation again (redelivered).
            charge(&t.db, order_id).await;
            cancel(&t.db, order_id).await;

            // Assert: still the one void; nothing charged, announced or listed.
            assert_eq!(
                rows_of(&t.db, order_id).await,
                [("VOIDED".into(), None, None)],
                "{}",
                t.backend
            );
            assert_eq!(announced(&t.db, order_id).await, Vec::<String>::new(), "{}", t.backend);
            let page = Page {
                limit: 10,
                offset: 0,
                after: None,
            };
            assert!(
                store::list(&t.db, Some(order_id), None, &page).await.unwrap().is_empty(),
                "{}",
                t.backend
            );
            t.cleanup().await;
        }
    }

    async fn a_void_and_a_charge_racing_for_one_order_never_both_win() {
        for t in backends(&[outbox::MIGRATIONS, MIGRATIONS]).await {
            let orders: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();

            // Act: for each order, the cancellation and the request at once.
            let mut racing = Vec::new();
            for &order_id in &orders {
                let db = t.db.clone();
                racing.push(tokio::spawn(async move { cancel(&db, order_id).await }));
                let db = t.db.clone();
                racing.push(tokio::spawn(async move { charge(&db, order_id).await }));
            }
            for task in racing {
                task.await.unwrap();
            }

            // Assert: one record per order; a charge announced only where
            // it won, a void never with an amount, and a charge that won
            // refunded by the cancellation it raced: none is kept.
            for &order_id in &orders {
                let rows = rows_of(&t.db, order_id).await;
                assert_eq!(rows.len(), 1, "{}: {rows:?}", t.backend);
                let events = announced(&t.db, order_id).await;
                let (status, amount, _) = &rows[0];
                let succeeded = events.iter().any(|k| k == "payment.succeeded.v1");
                match status.as_str() {
                    "VOIDED" => {
                        assert_eq!(*amount, None, "{}", t.backend);
                        assert!(!succeeded, "{}: {events:?}", t.backend);
                    }
                    _ => {
                        assert_eq!(status, "REFUNDED", "{}: a cancelled order's charge kept", t.backend);
                        assert_eq!(*amount, Some(1_500), "{}", t.backend);
                        assert!(succeeded, "{}: {events:?}", t.backend);
                        assert!(events.iter().any(|k| k == "payment.refunded.v1"), "{}: {events:?}", t.backend);
                    }
                }
            }
            t.cleanup().await;
        }
    }

    async fn voids_recorded_before_this_release_lose_their_placeholder_amount() {
        let first: &[Migration] = &MIGRATIONS[..1];
        for t in backends(&[outbox::MIGRATIONS, first]).await {
            // Arrange: a void as an earlier release wrote it (0 XXX), and a
            // captured payment.
            let (voided, captured) = (Uuid::now_v7(), Uuid::now_v7());
            let mut tx = t.db.begin().await.unwrap();
            for (order_id, amount, currency, status) in
                [(voided, 0i64, "XXX", "VOIDED"), (captured, 1_500, "EUR", "CAPTURED")]
            {
                tx.execute(
                    "INSERT INTO payments (id, order_id, amount, currency, status, reason, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, NULL, 't', 't')",
                    params![Uuid::now_v7(), order_id, amount, currency, status],
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();

            // Act: this release's migrations.
            t.db.migrate(&[outbox::MIGRATIONS, MIGRATIONS]).await.unwrap();

            // Assert: the void holds nothing, the payment what it held; a
            // payment without an amount is refused, and the order id is
            // still one record's only.
            assert_eq!(rows_of(&t.db, voided).await, [("VOIDED".into(), None, None)], "{}", t.backend);
            assert_eq!(
                rows_of(&t.db, captured).await,
                [("CAPTURED".into(), Some(1_500), Some("EUR".into()))],
                "{}",
                t.backend
            );
            let mut tx = t.db.begin().await.unwrap();
            let refused = tx
                .execute(
                    "INSERT INTO payments (id, order_id, status, created_at, updated_at)
                     VALUES ($1, $2, 'CAPTURED', 't', 't')",
                    params![Uuid::now_v7(), Uuid::now_v7()],
                )
                .await;
            assert!(refused.is_err(), "{}", t.backend);
            drop(tx);
            charge(&t.db, voided).await;
            assert_eq!(rows_of(&t.db, voided).await.len(), 1, "{}", t.backend);
            assert_eq!(announced(&t.db, voided).await, Vec::<String>::new(), "{}", t.backend);
            t.cleanup().await;
        }
    }
}
