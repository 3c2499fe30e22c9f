//! The outbox, the inbox and the storage layer, on SQLite and PostgreSQL.

use std::sync::{Arc, Mutex};

use agora_platform::consumer::{self, EventHandler, HandlerError};
use agora_platform::db::Migration;
use agora_platform::events::{Envelope, OrderCompleted};
use agora_platform::outbox::{self, OutboxRecord};
use agora_platform::transport::Publisher;
use agora_platform::{params, Tx};
use agora_testing::backends;
use async_trait::async_trait;
use uuid::Uuid;

const EFFECTS: &[Migration] = &[Migration {
    name: "test_effects",
    sql: "CREATE TABLE IF NOT EXISTS effects (id TEXT PRIMARY KEY, order_id TEXT NOT NULL, n BIGINT, note TEXT);",
}];

#[derive(Default)]
struct Recorder(Mutex<Vec<OutboxRecord>>);

#[async_trait]
impl Publisher for Recorder {
    async fn publish(&self, events: &[OutboxRecord]) -> anyhow::Result<()> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

/// Records one effect per handled event and re-emits nothing.
struct CountingHandler;

#[async_trait]
impl EventHandler for CountingHandler {
    fn consumer(&self) -> &'static str {
        "test"
    }
    fn routing_keys(&self) -> &'static [&'static str] {
        &["order.completed.v1"]
    }
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let e: OrderCompleted = event.decode()?;
        tx.execute(
            "INSERT INTO effects (id, order_id) VALUES ($1, $2)",
            params![Uuid::now_v7(), e.order_id],
        )
        .await?;
        Ok(())
    }
}

fn completed() -> Envelope {
    Envelope::root(&OrderCompleted {
        order_id: Uuid::now_v7(),
    })
}

agora_testing::each_backend! {
    async fn rows_round_trip_with_nulls_ints_and_text() {
        for t in backends(&[EFFECTS]).await {
            let mut tx = t.db.begin().await.unwrap();
            tx.execute(
                "INSERT INTO effects (id, order_id, n, note) VALUES ($1, $2, $3, $4)",
                params!["a", "o", 7i64, None::<String>],
            )
            .await
            .unwrap();
            tx.execute(
                "INSERT INTO effects (id, order_id, n, note) VALUES ($1, $2, $3, $4)",
                params!["b", "o", None::<i64>, "hi"],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let rows =
                t.db.query("SELECT id, n, note FROM effects ORDER BY id", &[])
                    .await
                    .unwrap();
            assert_eq!(rows[0].opt_i64("n").unwrap(), Some(7), "{}", t.backend);
            assert_eq!(rows[0].opt_text("note").unwrap(), None, "{}", t.backend);
            assert_eq!(rows[1].opt_i64("n").unwrap(), None, "{}", t.backend);
            assert_eq!(rows[1].text("note").unwrap(), "hi", "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn a_rolled_back_change_publishes_nothing() {
        for t in backends(&[outbox::MIGRATIONS, EFFECTS]).await {
            let recorder = Recorder::default();
            let mut tx = t.db.begin().await.unwrap();
            tx.publish(&completed()).await.unwrap();
            drop(tx); // rolled back

            assert_eq!(
                outbox::relay_once(&t.db, &recorder).await.unwrap(),
                0,
                "{}",
                t.backend
            );
            assert!(recorder.0.lock().unwrap().is_empty());
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn committed_events_are_published_once_and_kept_as_a_log() {
        for t in backends(&[outbox::MIGRATIONS, EFFECTS]).await {
            let recorder = Recorder::default();
            let events = [completed(), completed()];
            let mut tx = t.db.begin().await.unwrap();
            for e in &events {
                tx.publish(e).await.unwrap();
            }
            tx.commit().await.unwrap();

            assert_eq!(
                outbox::relay_once(&t.db, &recorder).await.unwrap(),
                2,
                "{}",
                t.backend
            );
            assert_eq!(
                outbox::relay_once(&t.db, &recorder).await.unwrap(),
                0,
                "{}",
                t.backend
            );
            let published = recorder.0.lock().unwrap().clone();
            assert_eq!(published[0].id, events[0].id.to_string());
            assert_eq!(published[0].routing_key, "order.completed.v1");
            let kept =
                t.db.query(
                    "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NOT NULL",
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(kept[0].i64("n").unwrap(), 2);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn a_redelivered_event_has_no_second_effect() {
        for t in backends(&[outbox::MIGRATIONS, EFFECTS]).await {
            let event = completed();
            assert!(consumer::apply(&t.db, &CountingHandler, &event)
                .await
                .unwrap());
            assert!(!consumer::apply(&t.db, &CountingHandler, &event)
                .await
                .unwrap());
            let body = serde_json::to_string(&event).unwrap();
            let outcomes = consumer::handle_batch(&t.db, &CountingHandler, &[&body, &body]).await;
            assert!(outcomes.iter().all(Result::is_ok));

            let effects =
                t.db.query("SELECT COUNT(*) AS n FROM effects", &[])
                    .await
                    .unwrap();
            assert_eq!(effects[0].i64("n").unwrap(), 1, "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn one_poison_message_does_not_hold_back_its_batch() {
        for t in backends(&[outbox::MIGRATIONS, EFFECTS]).await {
            let good = [
                serde_json::to_string(&completed()).unwrap(),
                serde_json::to_string(&completed()).unwrap(),
            ];
            let mut wrong = serde_json::to_value(completed()).unwrap();
            wrong["data"]["order_id"] = serde_json::json!(12);
            let wrong = wrong.to_string();

            let outcomes = consumer::handle_batch(
                &t.db,
                &CountingHandler,
                &[&good[0], "garbage", &wrong, &good[1]],
            )
            .await;

            assert!(outcomes[0].is_ok() && outcomes[3].is_ok(), "{}", t.backend);
            assert!(matches!(outcomes[1], Err(HandlerError::Permanent(_))));
            assert!(matches!(outcomes[2], Err(HandlerError::Permanent(_))));
            let effects =
                t.db.query("SELECT COUNT(*) AS n FROM effects", &[])
                    .await
                    .unwrap();
            assert_eq!(effects[0].i64("n").unwrap(), 2);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn after_commit_hooks_run_only_on_commit() {
        for t in backends(&[EFFECTS]).await {
            let ran = Arc::new(Mutex::new(Vec::new()));
            let mut tx = t.db.begin().await.unwrap();
            let r = ran.clone();
            tx.after_commit(move || r.lock().unwrap().push("rolled back"));
            drop(tx);
            let mut tx = t.db.begin().await.unwrap();
            let r = ran.clone();
            tx.after_commit(move || r.lock().unwrap().push("committed"));
            tx.commit().await.unwrap();
            assert_eq!(*ran.lock().unwrap(), ["committed"], "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn queued_rows_are_written_at_commit_and_never_on_rollback() {
        for t in backends(&[EFFECTS]).await {
            let mut dropped = t.db.begin().await.unwrap();
            dropped.insert_at_commit("effects", "id, order_id", params!["x", "o"].to_vec());
            drop(dropped); // rolled back

            let mut tx = t.db.begin().await.unwrap();
            tx.insert_at_commit(
                "effects",
                "id, order_id, n, note",
                params!["a", "o", 7i64, None::<String>].to_vec(),
            );
            tx.insert_at_commit(
                "effects",
                "id, order_id, n, note",
                params!["b", "o", None::<i64>, "hi"].to_vec(),
            );
            // A row that exists already is skipped, not an error.
            tx.insert_at_commit(
                "effects",
                "id, order_id, n, note",
                params!["a", "o", 8i64, None::<String>].to_vec(),
            );
            tx.write_queued_rows().await.unwrap();
            let inside = tx.query("SELECT COUNT(*) AS n FROM effects", &[]).await.unwrap();
            assert_eq!(
                inside[0].i64("n").unwrap(),
                2,
                "{}: visible inside",
                t.backend
            );
            tx.insert_at_commit(
                "effects",
                "id, order_id, n, note",
                params!["c", "o", 9i64, "late"].to_vec(),
            );
            tx.commit().await.unwrap();

            let rows =
                t.db.query("SELECT id, n, note FROM effects ORDER BY id", &[])
                    .await
                    .unwrap();
            let ids: Vec<String> = rows.iter().map(|r| r.text("id").unwrap()).collect();
            assert_eq!(ids, ["a", "b", "c"], "{}", t.backend);
            assert_eq!(
                rows[0].opt_i64("n").unwrap(),
                Some(7),
                "{}: first write wins",
                t.backend
            );
            assert_eq!(rows[1].opt_i64("n").unwrap(), None, "{}", t.backend);
            assert_eq!(rows[1].text("note").unwrap(), "hi", "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    async fn a_batch_applies_each_new_event_once() {
        for t in backends(&[outbox::MIGRATIONS, EFFECTS]).await {
            let seen = completed();
            consumer::apply(&t.db, &CountingHandler, &seen)
                .await
                .unwrap();
            let fresh = [completed(), completed()];
            let body = |e: &Envelope| serde_json::to_string(e).unwrap();
            let bodies = [
                body(&fresh[0]),
                body(&seen),
                body(&fresh[1]),
                body(&fresh[0]),
            ];

            let outcomes = consumer::handle_batch(
                &t.db,
                &CountingHandler,
                &bodies.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await;

            assert!(outcomes.iter().all(Result::is_ok), "{}", t.backend);
            let effects =
                t.db.query("SELECT COUNT(*) AS n FROM effects", &[])
                    .await
                    .unwrap();
            assert_eq!(
                effects[0].i64("n").unwrap(),
                3,
                "{}: the seen event and the duplicate in the batch add nothing",
                t.backend
            );
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    /// An event that carries a payment token is published whole, but the
    /// outbox (the service's event log) never keeps the token in clear: it
    /// stores the event masked from the start and drops the clear copy when
    /// the relay marks it published.
    async fn a_secret_is_published_but_never_kept_in_the_event_log() {
        use agora_platform::events::{Money, PaymentRequested};
        for t in backends(&[outbox::MIGRATIONS]).await {
            let requested = Envelope::root(&PaymentRequested {
                order_id: Uuid::now_v7(),
                customer_id: "c".into(),
                amount: Money {
                    amount: 100,
                    currency: "EUR".into(),
                },
                payment_token: "tok_live_5555".into(),
            });
            let mut tx = t.db.begin().await.unwrap();
            tx.publish(&requested).await.unwrap();
            tx.publish(&completed()).await.unwrap();
            tx.commit().await.unwrap();
            let kept = || async {
                t.db.query(
                    "SELECT envelope, COALESCE(secrets, '') AS secrets FROM outbox ORDER BY id",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.text("envelope").unwrap(), r.text("secrets").unwrap()))
                .collect::<Vec<_>>()
            };
            let before = kept().await;
            assert!(!before[0].0.contains("tok_live_5555"), "{}", t.backend);
            assert!(before[0].0.contains("****5555"), "{}", t.backend);

            let recorder = Recorder::default();
            assert_eq!(outbox::relay_once(&t.db, &recorder).await.unwrap(), 2);

            let published = recorder.0.lock().unwrap().clone();
            let sent: Envelope = serde_json::from_str(&published[0].envelope).unwrap();
            assert_eq!(sent, requested, "{}: published whole", t.backend);
            for (envelope, secret) in kept().await {
                assert!(!envelope.contains("tok_live_5555"), "{}", t.backend);
                assert_eq!(secret, "", "{}: the secret is gone", t.backend);
            }
            t.cleanup().await;
        }
    }
}

/// Writes an effect, then panics on the order it was told to: a bug in a
/// handler, which must cost that one event and never the consumer.
struct PanickingHandler(Uuid);

#[async_trait]
impl EventHandler for PanickingHandler {
    fn consumer(&self) -> &'static str {
        "test"
    }
    fn routing_keys(&self) -> &'static [&'static str] {
        &["order.completed.v1"]
    }
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        CountingHandler.handle(tx, event).await?;
        let e: OrderCompleted = event.decode()?;
        assert_ne!(e.order_id, self.0, "a bug in the handler");
        Ok(())
    }
}

agora_testing::each_backend! {
    async fn a_handler_that_panics_fails_its_event_alone_and_writes_nothing_for_it() {
        for t in backends(&[outbox::MIGRATIONS, EFFECTS]).await {
            let events: Vec<Envelope> = (0..3).map(|_| completed()).collect();
            let bodies: Vec<String> = events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect();
            let doomed: OrderCompleted = events[1].decode().unwrap();
            let handler = PanickingHandler(doomed.order_id);

            let outcomes = consumer::handle_batch(
                &t.db,
                &handler,
                &bodies.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await;

            assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{}", t.backend);
            assert!(
                matches!(&outcomes[1], Err(HandlerError::Permanent(e)) if e.to_string().contains("panicked")),
                "{}: {:?}",
                t.backend,
                outcomes[1]
            );
            let effects =
                t.db.query("SELECT COUNT(*) AS n FROM effects", &[])
                    .await
                    .unwrap();
            assert_eq!(effects[0].i64("n").unwrap(), 2, "{}", t.backend);
            // The storage is usable after the unwinding (no lock held, no
            // transaction left open).
            let mut tx = t.db.begin().await.unwrap();
            tx.execute("DELETE FROM effects", &[]).await.unwrap();
            tx.commit().await.unwrap();
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    /// The tables that only grow are swept past what they keep, through their
    /// time-ordered keys and in batches; what is kept, or still unpublished,
    /// stays.
    async fn retention_sweeps_what_is_past_its_time_and_nothing_else() {
        use agora_platform::retention::{uuid_v7_floor, Keep, Records, Retention, BATCH};
        use std::time::Duration;
        const NOTES: &[Migration] = &[Migration {
            name: "test_notes",
            sql: "CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY);",
        }];
        for t in backends(&[
            outbox::MIGRATIONS,
            agora_platform::idempotency::MIGRATIONS,
            agora_platform::retention::MIGRATIONS,
            NOTES,
        ])
        .await
        {
            let now = agora_platform::clock::now_millis();
            let day = 24 * 3600 * 1000;
            // An id of `days_ago` (the floor of that millisecond, plus `n`).
            let id_at = |days_ago: i64, n: u128| {
                let floor: Uuid = uuid_v7_floor(now - days_ago * day).parse().unwrap();
                Uuid::from_u128(floor.as_u128() + n).to_string()
            };
            let mut tx = t.db.begin().await.unwrap();
            let old_inbox = BATCH as u128 * 2 + 5;
            let handled = |days_ago: i64| agora_platform::clock::rfc3339_at(now - days_ago * day);
            for n in 0..old_inbox {
                tx.execute(
                    "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ('c', $1, $2)",
                    params![id_at(8, n), handled(8)],
                )
                .await
                .unwrap();
            }
            // A recent event, and an old one handled lately (a dead letter
            // replayed): both within the window.
            for (id, at) in [(id_at(6, 0), handled(6)), (id_at(9, 0), handled(0))] {
                tx.execute(
                    "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ('c', $1, $2)",
                    params![id, at],
                )
                .await
                .unwrap();
            }
            for (id, published) in [
                (id_at(31, 0), Some("t")),
                (id_at(31, 1), None),
                (id_at(29, 0), Some("t")),
            ] {
                tx.execute(
                    "INSERT INTO outbox (id, routing_key, subject, envelope, created_at, published_at)
                     VALUES ($1, 'k', 's', '{}', 'x', $2)",
                    params![id, published],
                )
                .await
                .unwrap();
            }
            for (key, created_at) in [("old", now - 2 * day), ("new", now)] {
                tx.execute(
                    "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
                     VALUES ('s', $1, 'f', 201, '', $2)",
                    params![key, created_at],
                )
                .await
                .unwrap();
            }
            for id in [id_at(91, 0), id_at(89, 0)] {
                tx.execute("INSERT INTO notes (id) VALUES ($1)", params![id])
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();

            let keep = Keep {
                idempotency_keys: Duration::from_secs(24 * 3600),
                ..Keep::default()
            };
            let notes = Records {
                table: "notes",
                key: "id",
            };
            let retention = Retention::new(t.db.clone(), keep, Some("c"), vec![notes]);
            let deleted = retention.sweep_all().await.unwrap();

            assert_eq!(deleted, old_inbox as usize + 1 + 1 + 1, "{}", t.backend);
            let count = |sql: &'static str| {
                let db = t.db.clone();
                async move { db.query(sql, &[]).await.unwrap()[0].i64("n").unwrap() }
            };
            assert_eq!(
                count("SELECT COUNT(*) AS n FROM inbox").await,
                2,
                "{}",
                t.backend
            );
            assert_eq!(
                count("SELECT COUNT(*) AS n FROM outbox").await,
                2,
                "{}: the unpublished and the recent one stay",
                t.backend
            );
            assert_eq!(
                count("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL").await,
                1
            );
            assert_eq!(count("SELECT COUNT(*) AS n FROM idempotency_keys").await, 1);
            assert_eq!(count("SELECT COUNT(*) AS n FROM notes").await, 1);
            assert_eq!(retention.sweep_all().await.unwrap(), 0, "{}", t.backend);
            t.cleanup().await;
        }
    }
}

agora_testing::each_backend! {
    /// Events an earlier release logged with their secrets in clear are
    /// brought to today's form at start: masked in the log, the secret kept
    /// apart only while unpublished, and published whole.
    async fn secrets_an_earlier_release_kept_in_clear_are_masked_at_start() {
        use agora_platform::events::{Money, PaymentRequested};
        for t in backends(&[outbox::MIGRATIONS]).await {
            let requested = |token: &str| {
                Envelope::root(&PaymentRequested {
                    order_id: Uuid::now_v7(),
                    customer_id: "c".into(),
                    amount: Money {
                        amount: 100,
                        currency: "EUR".into(),
                    },
                    payment_token: token.into(),
                })
            };
            let (published, pending) = (requested("tok_old_1111"), requested("tok_old_2222"));
            let mut tx = t.db.begin().await.unwrap();
            for (envelope, published_at) in [(&published, Some("t")), (&pending, None)] {
                tx.execute(
                    "INSERT INTO outbox (id, routing_key, subject, envelope, created_at, published_at)
                     VALUES ($1, 'payment.requested.v1', 's', $2, 'x', $3)",
                    params![
                        envelope.id,
                        serde_json::to_string(envelope).unwrap(),
                        published_at
                    ],
                )
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();

            assert_eq!(
                outbox::mask_kept_secrets(&t.db).await.unwrap(),
                2,
                "{}",
                t.backend
            );
            assert_eq!(
                outbox::mask_kept_secrets(&t.db).await.unwrap(),
                0,
                "done once"
            );

            let rows =
                t.db.query("SELECT envelope, secrets FROM outbox ORDER BY id", &[])
                    .await
                    .unwrap();
            for row in &rows {
                let envelope = row.text("envelope").unwrap();
                assert!(!envelope.contains("tok_old_"), "{}: {envelope}", t.backend);
            }
            assert_eq!(
                rows[0].opt_text("secrets").unwrap(),
                None,
                "published: nothing kept"
            );
            let recorder = Recorder::default();
            assert_eq!(outbox::relay_once(&t.db, &recorder).await.unwrap(), 1);
            let sent: Envelope = serde_json::from_str(&recorder.0.lock().unwrap()[0].envelope).unwrap();
            assert_eq!(sent, pending, "{}: published whole", t.backend);
            t.cleanup().await;
        }
    }
}
