//! An order cancelled before it was shipped: the void recorded in the
//! shipment's place holds no carrier, tracking number or items, and a late
//! request never ships.

use agora_platform::db::{Db, Migration};
use agora_platform::events::{
    Address, CancelCode, Envelope, LineItem, OrderCancelled, ShippingRequested,
};
use agora_platform::{outbox, params};
use agora_shipping::domain::Record;
use agora_shipping::{store, Shipping, MIGRATIONS};
use agora_testing::backends;
use uuid::Uuid;

async fn cancel(db: &Db, order_id: Uuid) {
    let event = Envelope::root(&OrderCancelled {
        order_id,
        reason: "changed my mind".into(),
        code: CancelCode::CustomerRequest,
    });
    let mut tx = db.begin().await.unwrap();
    Shipping::cancel_in(&mut tx, event.decode().unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn ship(db: &Db, order_id: Uuid) {
    let event = Envelope::root(&ShippingRequested {
        order_id,
        customer_id: Some("c".into()),
        shipping_address: Address {
            name: "A".into(),
            line1: "1 St".into(),
            line2: None,
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        },
        items: vec![LineItem {
            product_id: Uuid::now_v7(),
            quantity: 1,
        }],
    });
    let mut tx = db.begin().await.unwrap();
    Shipping::ship_in(&mut tx, event.decode().unwrap(), &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `(status, carrier, tracking_number, items)` of each of the order's rows.
type Values = (String, Option<String>, Option<String>, Option<String>);

async fn rows_of(db: &Db, order_id: Uuid) -> Vec<Values> {
    db.query(
        "SELECT status, carrier, tracking_number, items FROM shipments WHERE order_id = $1",
        params![order_id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.text("status").unwrap(),
            r.opt_text("carrier").unwrap(),
            r.opt_text("tracking_number").unwrap(),
            r.opt_text("items").unwrap(),
        )
    })
    .collect()
}

fn void() -> Values {
    ("VOIDED".into(), None, None, None)
}

agora_testing::each_backend! {
    async fn a_cancellation_racing_a_shipment_never_leaves_it_shipped() {
        for t in backends(&[outbox::MIGRATIONS, MIGRATIONS]).await {
            let orders: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();

            // Act: for each order, the cancellation and the request at once.
            let mut racing = Vec::new();
            for &order_id in &orders {
                let db = t.db.clone();
                racing.push(tokio::spawn(async move { cancel(&db, order_id).await }));
                let db = t.db.clone();
                racing.push(tokio::spawn(async move { ship(&db, order_id).await }));
            }
            for task in racing {
                task.await.unwrap();
            }

            // Assert: one record per order, voided or cancelled, never left
            // CREATED for an order that was cancelled.
            for &order_id in &orders {
                let rows = rows_of(&t.db, order_id).await;
                assert_eq!(rows.len(), 1, "{}: {rows:?}", t.backend);
                assert!(
                    matches!(rows[0].0.as_str(), "VOIDED" | "CANCELLED"),
                    "{}: {rows:?}",
                    t.backend
                );
            }
            t.cleanup().await;
        }
    }

    async fn a_cancellation_before_shipping_leaves_a_void_and_a_late_request_never_ships() {
        for t in backends(&[outbox::MIGRATIONS, MIGRATIONS]).await {
            let order_id = Uuid::now_v7();

            // Act: the cancellation overtakes the request, which comes late.
            cancel(&t.db, order_id).await;
            let mut tx = t.db.begin().await.unwrap();
            let found = store::find_by_order(&mut tx, order_id).await.unwrap();
            drop(tx);
            ship(&t.db, order_id).await;

            // Assert: the one void, with nothing in it; nothing shipped.
            assert!(
                matches!(&found, Some(Record::Voided(v)) if v.order_id == order_id),
                "{}: {found:?}",
                t.backend
            );
            assert_eq!(rows_of(&t.db, order_id).await, [void()], "{}", t.backend);
            let announced = t
                .db
                .query("SELECT COUNT(*) AS n FROM outbox", &[])
                .await
                .unwrap();
            assert_eq!(announced[0].i64("n").unwrap(), 0, "{}", t.backend);
            t.cleanup().await;
        }
    }

    async fn voids_recorded_before_this_release_lose_their_placeholder_values() {
        let first: &[Migration] = &MIGRATIONS[..1];
        for t in backends(&[outbox::MIGRATIONS, first]).await {
            // Arrange: a void as an earlier release wrote it (empty carrier,
            // tracking number and items), and a shipment.
            let voided = Uuid::now_v7();
            let mut tx = t.db.begin().await.unwrap();
            tx.execute(
                "INSERT INTO shipments (id, order_id, status, carrier, tracking_number, address, items, created_at, updated_at)
                 VALUES ($1, $2, 'VOIDED', '', '', NULL, '[]', 't', 't')",
                params![Uuid::now_v7(), voided],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            // A shipment as that release wrote it.
            let shipped = Uuid::now_v7();
            let mut tx = t.db.begin().await.unwrap();
            tx.execute(
                "INSERT INTO shipments (id, order_id, status, carrier, tracking_number, address, items, created_at, updated_at)
                 VALUES ($1, $2, 'CREATED', 'DHL', 'TRK-1', NULL, '[]', 't', 't')",
                params![Uuid::now_v7(), shipped],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let before = rows_of(&t.db, shipped).await;

            // Act: this release's migrations.
            t.db.migrate(&[outbox::MIGRATIONS, MIGRATIONS]).await.unwrap();

            // Assert: the void holds nothing, the shipment what it held; a
            // shipment without a carrier is refused.
            assert_eq!(rows_of(&t.db, voided).await, [void()], "{}", t.backend);
            assert_eq!(rows_of(&t.db, shipped).await, before, "{}", t.backend);
            let mut tx = t.db.begin().await.unwrap();
            let refused = tx
                .execute(
                    "INSERT INTO shipments (id, order_id, status, items, created_at, updated_at)
                     VALUES ($1, $2, 'CREATED', '[]', 't', 't')",
                    params![Uuid::now_v7(), Uuid::now_v7()],
                )
                .await;
            assert!(refused.is_err(), "{}", t.backend);
            drop(tx);
            ship(&t.db, voided).await;
            assert_eq!(rows_of(&t.db, voided).await, [void()], "{}", t.backend);
            t.cleanup().await;
        }
    }
}
