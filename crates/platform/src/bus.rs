//! The embedded durable bus: RabbitMQ's semantics in one process.
//!
//! It is a SQLite file (`bus.db`) holding one queue of deliveries per
//! subscribing service, bound to the routing keys that service handles, plus
//! a dead-letter table per service. Publishing inserts one delivery per bound
//! subscriber in one transaction; a consumer deletes (acks) a delivery only
//! after its own transaction committed. A `kill -9` at any point therefore
//! leaves each event either still in an outbox or still in a queue: nothing
//! is lost, and what is redelivered is absorbed by the consumer's inbox.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{now_millis, now_rfc3339};
use crate::consumer::{EventHandler, RetryPolicy, BATCH};
use crate::db::{Db, DbError, Migration};
use crate::dead_letters::{event_type_of, Action, DeadLetter, DeadLetterQueues, Filter};
use crate::outbox::OutboxRecord;
use crate::params;
use crate::transport::{self, Incoming, Inlet, Publisher, QueueSpec, Settlement, Transport};

const MIGRATIONS: &[Migration] = &[Migration {
    name: "bus_0001_queues",
    sql: include_str!("../migrations/bus_0001_queues.sql"),
}];

/// One message waiting in a subscriber's queue.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_id: String,
    pub copy: i64,
    pub routing_key: String,
    pub envelope: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

pub struct EmbeddedBus {
    db: Db,
    /// routing key -> subscribers bound to it.
    bindings: RwLock<HashMap<String, Vec<String>>>,
    wakers: RwLock<HashMap<String, Arc<Notify>>>,
    /// Copies of each event delivered to each subscriber: 1, or 2 to prove
    /// that consumers absorb duplicates.
    copies: i64,
    /// Dead letters kept per subscriber; past it, the oldest go.
    dead_letter_max: AtomicU32,
    retry: RetryPolicy,
}

/// How an embedded bus delivers.
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Deliver every event twice (proves that consumers absorb duplicates).
    pub duplicate_delivery: bool,
    pub retry: RetryPolicy,
    /// Dead letters kept per subscriber; past it, the oldest go.
    pub dead_letter_max: u32,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            duplicate_delivery: false,
            retry: RetryPolicy::default(),
            dead_letter_max: crate::dead_letters::DEFAULT_MAX,
        }
    }
}

impl EmbeddedBus {
    pub async fn open(path: &Path, options: BusOptions) -> Result<Arc<Self>, DbError> {
        let db = Db::open_sqlite(path, false)?;
        db.migrate(&[MIGRATIONS]).await?;
        Ok(Arc::new(EmbeddedBus {
            db,
            bindings: RwLock::new(HashMap::new()),
            wakers: RwLock::new(HashMap::new()),
            copies: if options.duplicate_delivery { 2 } else { 1 },
            dead_letter_max: AtomicU32::new(options.dead_letter_max.max(1)),
            retry: options.retry,
        }))
    }

    /// Binds `subscriber`'s queue to `routing_keys`; returns the notifier that
    /// wakes its consumer when something arrives.
    pub fn bind(&self, subscriber: &str, routing_keys: &[&str]) -> Arc<Notify> {
        let mut bindings = self.bindings.write().expect("bindings lock");
        for key in routing_keys {
            let subs = bindings.entry((*key).to_owned()).or_default();
            if !subs.iter().any(|s| s == subscriber) {
                subs.push(subscriber.to_owned());
            }
        }
        self.wakers
            .write()
            .expect("wakers lock")
            .entry(subscriber.to_owned())
            .or_default()
            .clone()
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.db.ping().await
    }

    /// Up to `limit` deliveries due now, oldest event first.
    pub async fn fetch(&self, subscriber: &str, limit: i64) -> Result<Vec<Delivery>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT event_id, copy, routing_key, envelope, attempts FROM deliveries
                 WHERE subscriber = $1 AND next_attempt_at <= $2
                 ORDER BY event_id, copy LIMIT $3",
                params![subscriber, now_millis(), limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    event_id: r.text("event_id")?,
                    copy: r.i64("copy")?,
                    routing_key: r.text("routing_key")?,
                    envelope: r.text("envelope")?,
                    attempts: r.i64("attempts")? as u32,
                })
            })
            .collect()
    }

    /// Applies the outcome of each handled delivery in one transaction.
    pub async fn settle(
        &self,
        subscriber: &str,
        outcomes: &[(Delivery, Settlement)],
    ) -> Result<(), DbError> {
        let mut tx = self.db.begin().await?;
        for (d, settlement) in outcomes {
            let key = params![subscriber, &d.event_id, d.copy];
            match settlement {
                Settlement::Ack => {
                    tx.execute(
                        "DELETE FROM deliveries WHERE subscriber = $1 AND event_id = $2 AND copy = $3",
                        key,
                    )
                    .await?;
                }
                Settlement::Retry { delay_ms, error } => {
                    tx.execute(
                        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $4, last_error = $5
                         WHERE subscriber = $1 AND event_id = $2 AND copy = $3",
                        params![subscriber, &d.event_id, d.copy, now_millis() + *delay_ms as i64, error],
                    )
                    .await?;
                }
                Settlement::DeadLetter { error } => {
                    tx.execute(
                        "INSERT INTO dead_letters (subscriber, event_id, routing_key, envelope, attempts, error, failed_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (subscriber, event_id) DO UPDATE SET attempts = excluded.attempts, error = excluded.error, failed_at = excluded.failed_at",
                        params![subscriber, &d.event_id, &d.routing_key, &d.envelope, i64::from(d.attempts) + 1, error, now_rfc3339()],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM deliveries WHERE subscriber = $1 AND event_id = $2 AND copy = $3",
                        key,
                    )
                    .await?;
                    let max = self.dead_letter_max.load(Ordering::Relaxed);
                    tx.execute(
                        "DELETE FROM dead_letters WHERE subscriber = $1 AND event_id IN (
                            SELECT event_id FROM dead_letters WHERE subscriber = $1
                            ORDER BY failed_at DESC, event_id DESC LIMIT -1 OFFSET $2)",
                        params![subscriber, max],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await
    }

    /// Deliveries still queued (due or waiting for a retry), per subscriber
    /// that has any.
    pub async fn depths(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT subscriber, COUNT(*) AS n FROM deliveries GROUP BY subscriber ORDER BY subscriber",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.text("subscriber")?, r.i64("n")?)))
            .collect()
    }

    /// Puts an event into a subscriber's queue under its own id (a replay):
    /// if that subscriber already handled it, its inbox absorbs it.
    pub async fn deliver(
        &self,
        subscriber: &str,
        event_id: &str,
        routing_key: &str,
        body: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "INSERT INTO deliveries (subscriber, event_id, copy, routing_key, envelope, next_attempt_at)
             VALUES ($1, $2, 0, $3, $4, 0) ON CONFLICT DO NOTHING",
            params![subscriber, event_id, routing_key, body],
        )
        .await?;
        tx.commit().await?;
        self.wake(subscriber);
        Ok(())
    }

    /// Puts a raw message straight into a subscriber's queue, bypassing any
    /// outbox: how tests inject poison messages.
    pub async fn inject(
        &self,
        subscriber: &str,
        routing_key: &str,
        body: &str,
    ) -> Result<String, DbError> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.db.begin().await?;
        tx.execute(
            "INSERT INTO deliveries (subscriber, event_id, copy, routing_key, envelope, next_attempt_at) VALUES ($1, $2, 0, $3, $4, 0)",
            params![subscriber, &id, routing_key, body],
        )
        .await?;
        tx.commit().await?;
        self.wake(subscriber);
        Ok(id)
    }

    fn wake(&self, subscriber: &str) {
        if let Some(waker) = self.wakers.read().expect("wakers lock").get(subscriber) {
            waker.notify_one();
        }
    }
}

#[async_trait]
impl Publisher for EmbeddedBus {
    async fn publish(&self, events: &[OutboxRecord]) -> anyhow::Result<()> {
        let routes: Vec<(&OutboxRecord, Vec<String>)> = {
            let bindings = self.bindings.read().expect("bindings lock");
            events
                .iter()
                .map(|e| (e, bindings.get(&e.routing_key).cloned().unwrap_or_default()))
                .collect()
        };
        let mut tx = self.db.begin().await?;
        for (event, subscribers) in &routes {
            for subscriber in subscribers {
                let chaos_copy = crate::chaos::roll(crate::chaos::get().duplicate_rate);
                for copy in 0..self.copies.max(1 + i64::from(chaos_copy)) {
                    // A relay that crashed after publishing but before marking
                    // its outbox publishes again: the same key is ignored.
                    tx.execute(
                        "INSERT INTO deliveries (subscriber, event_id, copy, routing_key, envelope, next_attempt_at)
                         VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT DO NOTHING",
                        params![subscriber, &event.id, copy, &event.routing_key, &event.envelope],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        let mut woken: Vec<&String> = routes.iter().flat_map(|(_, s)| s).collect();
        woken.sort();
        woken.dedup();
        for subscriber in woken {
            self.wake(subscriber);
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetterQueues for EmbeddedBus {
    async fn act(
        &self,
        action: Action,
        filter: &Filter,
        dry_run: bool,
    ) -> anyhow::Result<Vec<DeadLetter>> {
        let rows = self
            .db
            .query(
                "SELECT subscriber, event_id, routing_key, attempts, error, failed_at, envelope FROM dead_letters
                 WHERE ($1 IS NULL OR subscriber = $1) ORDER BY failed_at, event_id",
                params![filter.service.clone()],
            )
            .await?;
        let now = time::OffsetDateTime::now_utc();
        let mut letters = Vec::new();
        for r in &rows {
            let body = r.text("envelope")?;
            let letter = DeadLetter {
                service: r.text("subscriber")?,
                event_id: r.text("event_id")?,
                event_type: event_type_of(&body),
                routing_key: r.text("routing_key")?,
                attempts: r.i64("attempts")?,
                error: r.text("error")?,
                failed_at: r.text("failed_at")?,
                body,
            };
            if filter.matches(&letter, now) {
                letters.push(letter);
            }
        }
        if dry_run || action == Action::List || letters.is_empty() {
            return Ok(letters);
        }
        let mut tx = self.db.begin().await?;
        for l in &letters {
            if action == Action::Replay {
                tx.execute(
                    "INSERT INTO deliveries (subscriber, event_id, copy, routing_key, envelope, next_attempt_at)
                     VALUES ($1, $2, 0, $3, $4, 0) ON CONFLICT DO NOTHING",
                    params![&l.service, &l.event_id, &l.routing_key, &l.body],
                )
                .await?;
            }
            tx.execute(
                "DELETE FROM dead_letters WHERE subscriber = $1 AND event_id = $2",
                params![&l.service, &l.event_id],
            )
            .await?;
        }
        tx.commit().await?;
        if action == Action::Replay {
            for l in &letters {
                self.wake(&l.service);
            }
        }
        Ok(letters)
    }
}

#[async_trait]
impl Transport for EmbeddedBus {
    fn kind(&self) -> &'static str {
        "bus"
    }

    async fn bind(&self, queues: &[QueueSpec]) {
        for q in queues {
            let keys: Vec<&str> = q.routing_keys.iter().map(String::as_str).collect();
            EmbeddedBus::bind(self, &q.service, &keys);
        }
    }

    async fn consume(
        self: Arc<Self>,
        db: Db,
        handler: Arc<dyn EventHandler>,
        shutdown: CancellationToken,
    ) {
        let name = handler.consumer();
        let waker = self.bind(name, handler.routing_keys());
        let open = || {
            let (bus, waker) = (self.clone(), waker.clone());
            async move {
                Ok(EmbeddedInlet {
                    bus,
                    subscriber: name,
                    waker,
                })
            }
        };
        let policy = self.retry.clone();
        transport::run(name, open, db, handler, policy, shutdown, |_| {}).await;
    }

    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|e| e.to_string())
    }

    async fn queue_depths(&self, services: &[String]) -> anyhow::Result<Vec<(String, i64)>> {
        let waiting: HashMap<String, i64> = self.depths().await?.into_iter().collect();
        Ok(services
            .iter()
            .map(|s| (s.clone(), waiting.get(s).copied().unwrap_or(0)))
            .collect())
    }

    fn dead_letters(self: Arc<Self>, _services: Vec<String>) -> Arc<dyn DeadLetterQueues> {
        self
    }
}

/// A subscriber's queue in `bus.db`: due deliveries, oldest first, and a
/// waker that the publisher rings.
struct EmbeddedInlet {
    bus: Arc<EmbeddedBus>,
    subscriber: &'static str,
    waker: Arc<Notify>,
}

#[async_trait]
impl Inlet for EmbeddedInlet {
    type Delivery = Delivery;

    async fn next_batch(
        &mut self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Vec<Delivery>>> {
        while !shutdown.is_cancelled() {
            let batch = self.bus.fetch(self.subscriber, BATCH as i64).await?;
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
            // A retry falls due without a publish: look again now and then.
            tokio::select! {
                _ = self.waker.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        Ok(None)
    }

    fn incoming<'d>(&self, d: &'d Delivery) -> Incoming<'d> {
        Incoming {
            body: &d.envelope,
            event_id: &d.event_id,
            routing_key: &d.routing_key,
            attempts: d.attempts,
        }
    }

    async fn settle(&mut self, outcomes: Vec<(Delivery, Settlement)>) -> anyhow::Result<()> {
        // Should this fail, the effects have committed; the deliveries come
        // back and the inbox absorbs them.
        Ok(self.bus.settle(self.subscriber, &outcomes).await?)
    }
}
