//! Stock and reservations at the repository level, on SQLite and PostgreSQL.

use agora_inventory::domain::{normalize, Adjustment};
use agora_inventory::store::{self, AdjustError, ReserveOutcome};
use agora_platform::events::LineItem;
use agora_platform::outbox;
use agora_platform::Db;
use agora_testing::{backends, TestDb};
use uuid::Uuid;

async fn stocked(db: &Db, units: &[u32]) -> Vec<Uuid> {
    let mut tx = db.begin().await.unwrap();
    let mut ids = Vec::new();
    for (i, n) in units.iter().enumerate() {
        let id = Uuid::now_v7();
        store::create_stock(&mut tx, id, &format!("SKU-{i}"), *n)
            .await
            .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

fn line(product_id: Uuid, quantity: u32) -> LineItem {
    LineItem {
        product_id,
        quantity,
    }
}

async fn numbers(t: &TestDb, id: Uuid) -> (i64, i64, i64) {
    let s = store::find(&t.db, id).await.unwrap().unwrap();
    assert!(s.is_conserved(), "{}: {s:?}", t.backend);
    (s.available, s.reserved, s.sold)
}

async fn dbs() -> Vec<TestDb> {
    backends(&[outbox::MIGRATIONS, agora_inventory::MIGRATIONS]).await
}

agora_testing::each_backend! {
    async fn reservation_is_all_or_nothing() {
        for t in dbs().await {
            let ids = stocked(&t.db, &[10, 1]).await;
            let order = Uuid::now_v7();
            let mut tx = t.db.begin().await.unwrap();
            let outcome = agora_inventory::reserve(
                &mut tx,
                order,
                &normalize([line(ids[0], 4), line(ids[1], 2)]),
                i64::MAX,
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();

            let ReserveOutcome::Rejected(shortages) = outcome else {
                panic!("{}: {outcome:?}", t.backend)
            };
            assert_eq!(shortages.len(), 1);
            assert_eq!(
                (shortages[0].product_id, shortages[0].available),
                (ids[1], 1)
            );
            assert_eq!(numbers(&t, ids[0]).await, (10, 0, 0), "{}", t.backend);
            assert_eq!(numbers(&t, ids[1]).await, (1, 0, 0), "{}", t.backend);

            // The decision is final for that order.
            let mut tx = t.db.begin().await.unwrap();
            assert_eq!(
                agora_inventory::reserve(&mut tx, order, &[line(ids[0], 1)], i64::MAX)
                    .await
                    .unwrap(),
                ReserveOutcome::AlreadyDecided
            );
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn reserve_then_sell_or_release() {
        for t in dbs().await {
            let ids = stocked(&t.db, &[10]).await;
            let (sold_order, released_order) = (Uuid::now_v7(), Uuid::now_v7());
            let mut tx = t.db.begin().await.unwrap();
            assert!(matches!(
                agora_inventory::reserve(&mut tx, sold_order, &[line(ids[0], 3)], i64::MAX)
                    .await
                    .unwrap(),
                ReserveOutcome::Reserved(_)
            ));
            assert!(matches!(
                agora_inventory::reserve(&mut tx, released_order, &[line(ids[0], 2)], i64::MAX)
                    .await
                    .unwrap(),
                ReserveOutcome::Reserved(_)
            ));
            tx.commit().await.unwrap();
            assert_eq!(numbers(&t, ids[0]).await, (5, 5, 0));

            let mut tx = t.db.begin().await.unwrap();
            assert!(agora_inventory::sell(&mut tx, sold_order).await.unwrap());
            assert!(
                !agora_inventory::sell(&mut tx, sold_order).await.unwrap(),
                "selling twice"
            );
            assert_eq!(
                agora_inventory::release(&mut tx, released_order).await.unwrap(),
                Some(vec![line(ids[0], 2)])
            );
            assert_eq!(
                agora_inventory::release(&mut tx, released_order).await.unwrap(),
                None,
                "releasing twice"
            );
            assert_eq!(
                agora_inventory::release(&mut tx, sold_order).await.unwrap(),
                None,
                "a sale is not released"
            );
            tx.commit().await.unwrap();
            assert_eq!(numbers(&t, ids[0]).await, (7, 0, 3), "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn a_cancellation_that_overtakes_the_order_blocks_its_reservation() {
        for t in dbs().await {
            let ids = stocked(&t.db, &[10]).await;
            let order = Uuid::now_v7();
            let mut tx = t.db.begin().await.unwrap();
            assert_eq!(agora_inventory::release(&mut tx, order).await.unwrap(), None);
            assert_eq!(
                agora_inventory::reserve(&mut tx, order, &[line(ids[0], 3)], i64::MAX)
                    .await
                    .unwrap(),
                ReserveOutcome::AlreadyDecided
            );
            tx.commit().await.unwrap();
            assert_eq!(numbers(&t, ids[0]).await, (10, 0, 0), "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn a_reservation_committed_after_the_batch_locked_its_stock_is_still_given_back() {
        for t in dbs().await {
            // Arrange: a batch that locked no stock for the order (its
            // reservation was committed by another instance after the batch
            // looked), then the held reservation.
            let ids = stocked(&t.db, &[10]).await;
            let (sold_order, released_order) = (Uuid::now_v7(), Uuid::now_v7());
            let mut tx = t.db.begin().await.unwrap();
            for order in [sold_order, released_order] {
                agora_inventory::reserve(&mut tx, order, &[line(ids[0], 2)], i64::MAX)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();

            // Act
            let mut batch = t.db.begin().await.unwrap();
            let mut levels = store::lock_levels(&mut batch, &Default::default())
                .await
                .unwrap();
            let sold = store::sell_locked(&mut batch, &mut levels, sold_order)
                .await
                .unwrap();
            let released = store::release_locked(&mut batch, &mut levels, released_order)
                .await
                .unwrap();
            store::write_levels(&mut batch, &mut levels).await.unwrap();
            batch.commit().await.unwrap();

            // Assert: the units moved with the reservations.
            assert!(sold, "{}", t.backend);
            assert_eq!(released, Some(vec![line(ids[0], 2)]), "{}", t.backend);
            assert_eq!(numbers(&t, ids[0]).await, (8, 0, 2), "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn adjustments_never_take_stock_below_zero() {
        for t in dbs().await {
            let ids = stocked(&t.db, &[3]).await;
            let adjust = |delta| Adjustment {
                delta,
                reason: "count".into(),
            };
            let mut tx = t.db.begin().await.unwrap();
            assert_eq!(
                store::adjust(&mut tx, ids[0], &adjust(-4)).await.unwrap(),
                Err(AdjustError::BelowZero { available: 3 })
            );
            assert_eq!(
                store::adjust(&mut tx, Uuid::now_v7(), &adjust(1))
                    .await
                    .unwrap(),
                Err(AdjustError::UnknownProduct)
            );
            assert_eq!(
                store::adjust(&mut tx, ids[0], &adjust(-3)).await.unwrap(),
                Ok(())
            );
            tx.commit().await.unwrap();
            let s = store::find(&t.db, ids[0]).await.unwrap().unwrap();
            assert_eq!((s.available, s.adjusted), (0, -3), "{}", t.backend);
            assert!(s.is_conserved());
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    /// Many reservations at once for the last units: never more than exist.
    async fn concurrent_reservations_never_oversell() {
        for t in dbs().await {
            let ids = stocked(&t.db, &[5, 100]).await;
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (db, ids) = (t.db.clone(), ids.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let mut tx = db.begin().await.unwrap();
                        let items = normalize([line(ids[1], 1), line(ids[0], 1)]);
                        match agora_inventory::reserve(&mut tx, Uuid::now_v7(), &items, i64::MAX).await {
                            Ok(outcome) => match tx.commit().await {
                                Ok(()) => return matches!(outcome, ReserveOutcome::Reserved(_)),
                                Err(_) => continue, // serialisation conflict: try again
                            },
                            Err(_) => continue,
                        }
                    }
                }));
            }
            let mut reserved = 0;
            for task in tasks {
                reserved += usize::from(task.await.unwrap());
            }
            assert_eq!(reserved, 5, "{}", t.backend);
            assert_eq!(numbers(&t, ids[0]).await, (0, 5, 0), "{}", t.backend);
            assert_eq!(numbers(&t, ids[1]).await, (95, 5, 0), "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    /// A sale and a release (an expiry, a cancellation) of the same
    /// reservation in two transactions at once: exactly one of them gets it.
    async fn a_racing_sale_and_release_take_the_reservation_once() {
        for t in dbs().await {
            let ids = stocked(&t.db, &[10]).await;
            let order = Uuid::now_v7();
            let mut tx = t.db.begin().await.unwrap();
            agora_inventory::reserve(&mut tx, order, &[line(ids[0], 4)], i64::MAX)
                .await
                .unwrap();
            tx.commit().await.unwrap();

            let mut selling = t.db.begin().await.unwrap();
            let sold = agora_inventory::sell(&mut selling, order).await.unwrap();
            let db = t.db.clone();
            // Waits for the sale's locks, then sees the reservation as it is.
            let releasing = tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                let released = agora_inventory::release(&mut tx, order).await.unwrap();
                tx.commit().await.unwrap();
                released
            });
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            selling.commit().await.unwrap();
            let released = releasing.await.unwrap();

            assert!(sold, "{}", t.backend);
            assert_eq!(released, None, "{}: released a sold reservation", t.backend);
            assert_eq!(numbers(&t, ids[0]).await, (6, 0, 4), "{}", t.backend);
            t.cleanup().await;
        }
    }
}
