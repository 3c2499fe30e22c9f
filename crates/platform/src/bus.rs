//! The embedded durable bus: RabbitMQ's semantics in one process.
//!
//! Each service's outbox is also its subscribers' queue. A subscriber keeps,
//! per service whose events it takes, a cursor: the outbox position
//! (SQLite's `rowid`) up to which it has handled and settled every event it
//! is bound to. SQLite has one writer, so rows take their `rowid` in the
//! order their transactions commit, and a reader that sees a row sees every
//! row below it: reading past the cursor never skips a committed event.
//! A commit that wrote events wakes the subscribers of that service at once,
//! so an event goes from its producer's commit to its consumer's transaction
//! in one hop, with no copy written anywhere else, no relay and no ack write.
//!
//! Cursors are kept in `bus.db`, written at most every
//! [`CURSOR_SAVE_EVERY`] under load and once a subscriber falls idle. A
//! `kill -9` loses at most that much of a cursor's progress: those events
//! are delivered again and absorbed by the consumer's inbox. Nothing is lost,
//! since a cursor never passes an event before its handling committed or its
//! failure was recorded.
//!
//! What the outboxes cannot hold lives in `bus.db` too, as RabbitMQ's
//! queues did: a queue of deliveries per subscriber (a retry waiting for its
//! time, an event replayed from the log or from the dead letters, a message
//! put there by a test, an event of an earlier release's outbox or of
//! another process) and its dead letters. A consumer deletes (acks) such a
//! delivery only after its own transaction committed.
//!
//! A subscriber starts reading a service's outbox where it ends when the
//! subscriber is first bound: like a new queue on a broker, it takes the
//! events published from then on. A service's secrets leave its outbox once
//! every subscriber of the event has settled it.
//!
//! A subscriber can be told to hold some of its deliveries back (a row in
//! `bus.db`'s `holds`, which the browser tests write to make a service look
//! slow): it takes the hold up at its next sweep, says so in the row, and
//! from then on parks each matching event in its queue as never due
//! ([`HELD`]) instead of handling it; a released hold makes them due again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{now_millis, now_rfc3339};
use crate::consumer::{EventHandler, RetryPolicy, BATCH};
use crate::db::{placeholders, Db, DbError, Migration, Value};
use crate::dead_letters::{event_type_of, Action, DeadLetter, DeadLetterQueues, Filter};
use crate::outbox::OutboxRecord;
use crate::params;
use crate::transport::{self, Incoming, Inlet, Publisher, QueueSpec, Settlement, Transport};

const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "bus_0001_queues",
        sql: include_str!("../migrations/bus_0001_queues.sql"),
    },
    Migration {
        name: "bus_0002_cursors",
        sql: include_str!("../migrations/bus_0002_cursors.sql"),
    },
    Migration {
        name: "bus_0003_holds",
        sql: include_str!("../migrations/bus_0003_holds.sql"),
    },
];

/// How often a consumer reads its queue and every outbox it takes events
/// from, woken or not: a retry falls due, another process wrote.
const POLL: Duration = Duration::from_millis(200);

/// How far behind its progress a saved cursor may be under load (what a
/// `kill -9` delivers again).
pub const CURSOR_SAVE_EVERY: Duration = Duration::from_millis(100);

/// How long a subscriber may take to honour a hold or let go of it.
const HOLD_TAKEN_WITHIN: Duration = Duration::from_secs(15);

/// How long a subscriber waits, idle, before saving its cursors.
const CURSOR_SAVE_IDLE: Duration = Duration::from_millis(20);

/// `next_attempt_at` (ms since the epoch) of a held delivery, in the year
/// ~287,000: never due until its hold is released.
pub const HELD: i64 = 9_000_000_000_000_000;

/// A hold a subscriber honours: its deliveries of `routing_key` whose
/// envelope contains `needle` are parked in its queue, never due.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hold {
    routing_key: String,
    needle: String,
}

impl Hold {
    fn keeps(&self, d: &Delivery) -> bool {
        d.routing_key == self.routing_key && d.envelope.contains(&self.needle)
    }
}

/// Where a delivery comes from, and so how it is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The subscriber's queue in `bus.db`, as its copy `copy`.
    Queue { copy: i64 },
    /// A service's outbox, through the subscriber's feed number `feed`, at
    /// `seq` (the row's `rowid`); `secret` when the row still holds one.
    Outbox { feed: usize, seq: i64, secret: bool },
}

/// One message for a subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_id: String,
    pub routing_key: String,
    pub envelope: String,
    /// Failed attempts so far.
    pub attempts: u32,
    pub origin: Origin,
}

/// One subscriber's position in one service's outbox.
struct Feed {
    producer: String,
    db: Db,
    /// The subscriber's routing keys that this service emits.
    keys: Vec<String>,
    /// Reads the rows past a position, the body only of those it takes.
    read: String,
    /// Counts the rows past a position that it takes.
    count: String,
    /// Every row at or below it is settled.
    cursor: AtomicI64,
    /// Rows were written since the last read.
    dirty: AtomicBool,
    /// Rows whose secrets every feed has passed but could not be dropped
    /// yet (a storage error): tried again with the next ones.
    unclear: Mutex<Vec<(String, i64)>>,
}

/// What one read of a feed gave.
struct Read {
    /// The rows it takes.
    taken: Vec<Delivery>,
    /// The last row read, taken or not.
    last: Option<i64>,
    /// As many rows as asked for: there may be more.
    full: bool,
}

impl Feed {
    fn new(producer: &str, db: Db, keys: Vec<String>, cursor: i64) -> Feed {
        let taken = placeholders(3, keys.len());
        Feed {
            read: format!(
                "SELECT rowid AS seq, id, routing_key,
                        CASE WHEN routing_key IN ({taken}) THEN envelope END AS envelope,
                        CASE WHEN routing_key IN ({taken}) THEN secrets END AS secrets
                 FROM outbox WHERE rowid > $1 ORDER BY rowid LIMIT $2"
            ),
            count: format!(
                "SELECT COUNT(*) AS n FROM outbox WHERE rowid > $1 AND routing_key IN ({})",
                placeholders(2, keys.len())
            ),
            producer: producer.to_owned(),
            db,
            keys,
            cursor: AtomicI64::new(cursor),
            dirty: AtomicBool::new(true),
            unclear: Mutex::new(Vec::new()),
        }
    }

    fn takes(&self, routing_key: &str) -> bool {
        self.keys.iter().any(|k| k == routing_key)
    }

    /// Up to `limit` rows past the cursor, those it takes as deliveries
    /// (their secrets put back); `feed` is its number for the subscriber.
    async fn read(&self, feed: usize, limit: usize) -> Result<Read, DbError> {
        let mut values = vec![
            Value::from(self.cursor.load(Ordering::Acquire)),
            Value::from(limit as i64),
        ];
        values.extend(self.keys.iter().map(Value::from));
        let rows = self.db.query_unmetered(&self.read, &values).await?;
        let mut taken = Vec::new();
        let mut last = None;
        for r in &rows {
            let seq = r.i64("seq")?;
            last = Some(seq);
            let Some(kept) = r.opt_text("envelope")? else {
                continue;
            };
            let secrets = r.opt_text("secrets")?;
            let envelope = crate::outbox::whole(kept, secrets.as_deref())?;
            taken.push(Delivery {
                event_id: r.text("id")?,
                routing_key: r.text("routing_key")?,
                envelope,
                attempts: 0,
                origin: Origin::Outbox {
                    feed,
                    seq,
                    secret: secrets.is_some(),
                },
            });
        }
        Ok(Read {
            taken,
            last,
            full: rows.len() >= limit,
        })
    }

    /// Rows past the cursor that it takes.
    async fn waiting(&self) -> Result<i64, DbError> {
        let mut values = vec![Value::from(self.cursor.load(Ordering::Acquire))];
        values.extend(self.keys.iter().map(Value::from));
        let row = self.db.query_unmetered(&self.count, &values).await?;
        row.first()
            .map(|r| r.i64("n"))
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

/// A consuming service, as the bus knows it.
#[derive(Default)]
struct Subscriber {
    /// Rung by a commit that wrote events it takes, and by anything put
    /// into its queue.
    notify: Notify,
    /// Something was put into its queue in `bus.db` since the last read.
    queued: AtomicBool,
    /// One per service whose events it takes.
    feeds: RwLock<Vec<Arc<Feed>>>,
    /// The cursors last saved, and when.
    saved: Mutex<(Vec<i64>, Option<Instant>)>,
}

impl Subscriber {
    fn feeds(&self) -> Vec<Arc<Feed>> {
        self.feeds.read().expect("feeds lock").clone()
    }

    fn cursors(&self) -> Vec<i64> {
        positions(&self.feeds())
    }

    /// Whether its cursors moved since they were last saved, and how long
    /// ago that was.
    fn unsaved(&self) -> Option<Duration> {
        let saved = self.saved.lock().expect("saved lock");
        (saved.0 != self.cursors()).then(|| saved.1.map_or(Duration::MAX, |at| at.elapsed()))
    }
}

pub struct EmbeddedBus {
    db: Db,
    /// routing key -> subscribers bound to it.
    bindings: RwLock<HashMap<String, Vec<String>>>,
    subscribers: RwLock<HashMap<String, Arc<Subscriber>>>,
    /// The services whose outboxes it reads, by name.
    producers: RwLock<HashMap<String, Db>>,
    /// service -> the feeds that read its outbox.
    readers: RwLock<HashMap<String, Vec<Arc<Feed>>>>,
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
            subscribers: RwLock::new(HashMap::new()),
            producers: RwLock::new(HashMap::new()),
            readers: RwLock::new(HashMap::new()),
            copies: if options.duplicate_delivery { 2 } else { 1 },
            dead_letter_max: AtomicU32::new(options.dead_letter_max.max(1)),
            retry: options.retry,
        }))
    }

    fn subscriber(&self, name: &str) -> Arc<Subscriber> {
        if let Some(s) = self.subscribers.read().expect("subscribers lock").get(name) {
            return s.clone();
        }
        self.subscribers
            .write()
            .expect("subscribers lock")
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Binds `subscriber`'s queue to `routing_keys`.
    pub fn bind(&self, subscriber: &str, routing_keys: &[&str]) {
        let mut bindings = self.bindings.write().expect("bindings lock");
        for key in routing_keys {
            let subs = bindings.entry((*key).to_owned()).or_default();
            if !subs.iter().any(|s| s == subscriber) {
                subs.push(subscriber.to_owned());
            }
        }
        drop(bindings);
        self.subscriber(subscriber);
    }

    /// Gives each subscriber in `queues` a feed from every attached service
    /// that emits what it takes, starting at its saved cursor (or, for a
    /// new subscription, at the end of that outbox), and has each of those
    /// services' commits ring its subscribers.
    async fn open_feeds(&self, queues: &[QueueSpec]) -> Result<(), DbError> {
        let producers = self.producers.read().expect("producers lock").clone();
        for q in queues {
            let mut taken: Vec<(&str, Vec<String>)> = Vec::new();
            for key in &q.routing_keys {
                let Some(source) = crate::events::event_type(key).map(|e| e.source) else {
                    continue;
                };
                if !producers.contains_key(source) {
                    continue;
                }
                match taken.iter_mut().find(|(p, _)| *p == source) {
                    Some((_, keys)) => keys.push(key.clone()),
                    None => taken.push((source, vec![key.clone()])),
                }
            }
            let mut feeds = Vec::new();
            for (producer, keys) in taken {
                let db = producers[producer].clone();
                let cursor = self.start_at(&q.service, producer, &db).await?;
                feeds.push(Arc::new(Feed::new(producer, db, keys, cursor)));
            }
            let subscriber = self.subscriber(&q.service);
            *subscriber.saved.lock().expect("saved lock") =
                (positions(&feeds), Some(Instant::now()));
            *subscriber.feeds.write().expect("feeds lock") = feeds;
        }
        let subscribers = self.subscribers.read().expect("subscribers lock").clone();
        let mut readers = self.readers.write().expect("readers lock");
        for (name, db) in &producers {
            let rung: Vec<(Arc<Feed>, Arc<Subscriber>)> = subscribers
                .values()
                .flat_map(|s| {
                    s.feeds()
                        .into_iter()
                        .filter(|f| &f.producer == name)
                        .map(|f| (f, s.clone()))
                })
                .collect();
            readers.insert(name.clone(), rung.iter().map(|(f, _)| f.clone()).collect());
            db.read_outbox_as_queue(Arc::new(move |written: &[String]| {
                for (feed, subscriber) in &rung {
                    feed.dirty.store(true, Ordering::Release);
                    if written.iter().any(|k| feed.takes(k)) {
                        subscriber.notify.notify_one();
                    }
                }
            }));
        }
        Ok(())
    }

    /// Where `subscriber` resumes reading `producer`'s outbox: its saved
    /// cursor, or the end of the outbox for a new subscription (saved at
    /// once). Never past the outbox's last row, where `rowid`s would be
    /// given again.
    async fn start_at(&self, subscriber: &str, producer: &str, db: &Db) -> Result<i64, DbError> {
        let end = db
            .query_opt("SELECT COALESCE(MAX(rowid), 0) AS seq FROM outbox", &[])
            .await?
            .map(|r| r.i64("seq"))
            .transpose()?
            .unwrap_or(0);
        let saved = self
            .db
            .query_opt(
                "SELECT seq FROM cursors WHERE subscriber = $1 AND producer = $2",
                params![subscriber, producer],
            )
            .await?
            .map(|r| r.i64("seq"))
            .transpose()?;
        let at = saved.map_or(end, |s| s.min(end));
        if saved != Some(at) {
            let mut tx = self.db.begin().await?;
            save_cursor(&mut tx, subscriber, producer, at).await?;
            tx.commit().await?;
        }
        Ok(at)
    }

    /// Saves `subscriber`'s cursors if they moved.
    async fn save_cursors(&self, name: &str, subscriber: &Subscriber) -> Result<(), DbError> {
        let feeds = subscriber.feeds();
        let cursors = positions(&feeds);
        if subscriber.saved.lock().expect("saved lock").0 == cursors {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        for (feed, at) in feeds.iter().zip(&cursors) {
            save_cursor(&mut tx, name, &feed.producer, *at).await?;
        }
        tx.commit().await?;
        *subscriber.saved.lock().expect("saved lock") = (cursors, Some(Instant::now()));
        Ok(())
    }

    /// Drops the secrets of `rows` (routing key, `rowid`) of `producer`'s
    /// outbox that every feed taking them has passed (the last feed to pass
    /// a row drops its secret), and of those a failed attempt left.
    async fn clear_secrets(&self, producer: &Feed, mut rows: Vec<(String, i64)>) {
        rows.append(&mut producer.unclear.lock().expect("unclear lock"));
        let done: Vec<(String, i64)> = {
            let readers = self
                .readers
                .read()
                .expect("readers lock")
                .get(&producer.producer)
                .cloned()
                .unwrap_or_default();
            rows.into_iter()
                .filter(|(key, seq)| {
                    readers
                        .iter()
                        .filter(|f| f.takes(key))
                        .all(|f| f.cursor.load(Ordering::Acquire) >= *seq)
                })
                .collect()
        };
        if done.is_empty() {
            return;
        }
        let seqs: Vec<Value> = done.iter().map(|(_, seq)| Value::from(*seq)).collect();
        let cleared = async {
            let mut tx = producer.db.begin().await?;
            tx.execute(
                &format!(
                    "UPDATE outbox SET secrets = NULL WHERE rowid IN ({})",
                    placeholders(1, seqs.len())
                ),
                &seqs,
            )
            .await?;
            tx.commit().await
        };
        if let Err(e) = cleared.await {
            tracing::warn!(producer = %producer.producer, error = %e, "secrets of handled events kept for now; dropped with the next ones");
            producer.unclear.lock().expect("unclear lock").extend(done);
        }
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.db.ping().await
    }

    /// Up to `limit` deliveries due now in `subscriber`'s queue, oldest
    /// event first.
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
                    routing_key: r.text("routing_key")?,
                    envelope: r.text("envelope")?,
                    attempts: r.i64("attempts")? as u32,
                    origin: Origin::Queue {
                        copy: r.i64("copy")?,
                    },
                })
            })
            .collect()
    }

    /// Records the outcome of each handled delivery that `bus.db` has to
    /// know of, in one transaction: a delivery from the queue is deleted,
    /// retried later or dead-lettered; one read from an outbox needs
    /// nothing here once handled, and is queued for its retry or
    /// dead-lettered when not.
    pub async fn settle(
        &self,
        subscriber: &str,
        outcomes: &[(Delivery, Settlement)],
    ) -> Result<(), DbError> {
        let recorded = |(d, s): &&(Delivery, Settlement)| {
            matches!(d.origin, Origin::Queue { .. }) || *s != Settlement::Ack
        };
        if !outcomes.iter().any(|o| recorded(&o)) {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        for (d, settlement) in outcomes.iter().filter(recorded) {
            let copy = match d.origin {
                Origin::Queue { copy } => copy,
                Origin::Outbox { .. } => 0,
            };
            let key = params![subscriber, &d.event_id, copy];
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
                        "INSERT INTO deliveries (subscriber, event_id, copy, routing_key, envelope, attempts, next_attempt_at, last_error)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (subscriber, event_id, copy) DO UPDATE SET attempts = excluded.attempts,
                             next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error",
                        params![subscriber, &d.event_id, copy, &d.routing_key, &d.envelope,
                            i64::from(d.attempts) + 1, now_millis() + *delay_ms as i64, error],
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

    /// Deliveries waiting (in its queue, due or not, and in the outboxes it
    /// reads, past its cursors), per subscriber in `services`.
    pub async fn depths(&self, services: &[String]) -> Result<Vec<(String, i64)>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT subscriber, COUNT(*) AS n FROM deliveries GROUP BY subscriber",
                &[],
            )
            .await?;
        let mut queued = HashMap::new();
        for r in &rows {
            queued.insert(r.text("subscriber")?, r.i64("n")?);
        }
        let mut depths = Vec::new();
        for service in services {
            let mut n = queued.get(service).copied().unwrap_or(0);
            let feeds = self
                .subscribers
                .read()
                .expect("subscribers lock")
                .get(service)
                .map(|s| s.feeds());
            for feed in feeds.unwrap_or_default() {
                n += feed.waiting().await?;
            }
            depths.push((service.clone(), n));
        }
        Ok(depths)
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
        queue(&mut tx, subscriber, event_id, 0, routing_key, body, 0).await?;
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
        queue(&mut tx, subscriber, &id, 0, routing_key, body, 0).await?;
        tx.commit().await?;
        self.wake(subscriber);
        Ok(id)
    }

    /// The holds `subscriber` is to honour, read from `bus.db`: those asked
    /// for are marked as honoured from now on; those released let go of what
    /// they parked (due now) and are removed.
    async fn holds(&self, subscriber: &str) -> Result<Vec<Hold>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT name, routing_key, needle, state FROM holds WHERE subscriber = $1 ORDER BY name",
                params![subscriber],
            )
            .await?;
        let mut holds = Vec::new();
        let mut changed = Vec::new();
        for r in &rows {
            let hold = Hold {
                routing_key: r.text("routing_key")?,
                needle: r.text("needle")?,
            };
            match r.text("state")?.as_str() {
                "holding" => holds.push(hold),
                "asked" => {
                    changed.push((r.text("name")?, None));
                    holds.push(hold);
                }
                _ => changed.push((r.text("name")?, Some(hold))),
            }
        }
        if changed.is_empty() {
            return Ok(holds);
        }
        let mut tx = self.db.begin().await?;
        for (name, released) in &changed {
            match released {
                None => {
                    tx.execute(
                        "UPDATE holds SET state = 'holding' WHERE name = $1 AND state = 'asked'",
                        params![name],
                    )
                    .await?;
                }
                Some(hold) => {
                    tx.execute(
                        "UPDATE deliveries SET next_attempt_at = 0 WHERE subscriber = $1 AND routing_key = $2
                         AND instr(envelope, $3) > 0 AND next_attempt_at >= $4",
                        params![subscriber, &hold.routing_key, &hold.needle, HELD],
                    )
                    .await?;
                    tx.execute("DELETE FROM holds WHERE name = $1", params![name])
                        .await?;
                }
            }
        }
        tx.commit().await?;
        if changed.iter().any(|(_, released)| released.is_some()) {
            self.wake(subscriber);
        }
        Ok(holds)
    }

    /// Parks `held` deliveries in `subscriber`'s queue, never due.
    async fn park(&self, subscriber: &str, held: &[Delivery]) -> Result<(), DbError> {
        let mut tx = self.db.begin().await?;
        for d in held {
            queue(
                &mut tx,
                subscriber,
                &d.event_id,
                0,
                &d.routing_key,
                &d.envelope,
                HELD,
            )
            .await?;
        }
        tx.commit().await
    }

    /// Holds back, from now on, `subscriber`'s deliveries of `routing_key`
    /// whose envelope contains `needle`, under `name`; returns once the
    /// subscriber honours it (at its next sweep, within [`POLL`] when idle).
    pub async fn hold(
        &self,
        name: &str,
        subscriber: &str,
        routing_key: &str,
        needle: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "INSERT INTO holds (name, subscriber, routing_key, needle) VALUES ($1, $2, $3, $4)",
            params![name, subscriber, routing_key, needle],
        )
        .await?;
        tx.commit().await?;
        self.settled_hold(name, "state = 'holding'").await
    }

    /// Ends the hold `name`: what it parked falls due, and no later delivery
    /// is held by it. Returns once its subscriber has let go of it.
    pub async fn release(&self, name: &str) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "UPDATE holds SET state = 'released' WHERE name = $1",
            params![name],
        )
        .await?;
        tx.commit().await?;
        self.settled_hold(name, "false").await
    }

    /// Waits until the hold `name` is gone or its row meets `state`: its
    /// subscriber has taken it up.
    async fn settled_hold(&self, name: &str, state: &str) -> anyhow::Result<()> {
        let sql = format!("SELECT {state} AS done FROM holds WHERE name = $1");
        let deadline = Instant::now() + HOLD_TAKEN_WITHIN;
        loop {
            match self.db.query_opt(&sql, params![name]).await? {
                Some(r) if r.i64("done")? == 0 => {
                    if Instant::now() >= deadline {
                        anyhow::bail!("hold {name}: its subscriber did not take it up within {HOLD_TAKEN_WITHIN:?} (is it consuming?)");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                _ => return Ok(()),
            }
        }
    }

    /// Tells `subscriber` that its queue in `bus.db` has something.
    fn wake(&self, subscriber: &str) {
        if let Some(s) = self
            .subscribers
            .read()
            .expect("subscribers lock")
            .get(subscriber)
        {
            s.queued.store(true, Ordering::Release);
            s.notify.notify_one();
        }
    }
}

/// Where each of `feeds` stands.
fn positions(feeds: &[Arc<Feed>]) -> Vec<i64> {
    feeds
        .iter()
        .map(|f| f.cursor.load(Ordering::Acquire))
        .collect()
}

/// Puts copy `copy` of an event into `subscriber`'s queue, due at
/// `due_at` (ms since the epoch: 0 for now, [`HELD`] for never); a delivery
/// already there under that key is kept as it is.
async fn queue(
    tx: &mut crate::db::Tx,
    subscriber: &str,
    event_id: &str,
    copy: i64,
    routing_key: &str,
    envelope: &str,
    due_at: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO deliveries (subscriber, event_id, copy, routing_key, envelope, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        params![subscriber, event_id, copy, routing_key, envelope, due_at],
    )
    .await?;
    Ok(())
}

async fn save_cursor(
    tx: &mut crate::db::Tx,
    subscriber: &str,
    producer: &str,
    at: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO cursors (subscriber, producer, seq) VALUES ($1, $2, $3)
         ON CONFLICT (subscriber, producer) DO UPDATE SET seq = excluded.seq",
        params![subscriber, producer, at],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl Publisher for EmbeddedBus {
    /// Queues events that reach the bus other than through an outbox it
    /// reads: those an earlier release or another process left unpublished.
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
                for copy in 0..self.copies_of_one() {
                    // A relay that crashed after publishing but before marking
                    // its outbox publishes again: the same key is ignored.
                    queue(
                        &mut tx,
                        subscriber,
                        &event.id,
                        copy,
                        &event.routing_key,
                        &event.envelope,
                        0,
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

impl EmbeddedBus {
    /// How many times to deliver one event to one subscriber: twice with
    /// duplicate delivery on, or when chaos says so.
    fn copies_of_one(&self) -> i64 {
        let chaos_copy = crate::chaos::roll(crate::chaos::get().duplicate_rate);
        self.copies.max(1 + i64::from(chaos_copy))
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
                queue(
                    &mut tx,
                    &l.service,
                    &l.event_id,
                    0,
                    &l.routing_key,
                    &l.body,
                    0,
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

    fn attach(&self, service: &str, db: &Db) {
        self.producers
            .write()
            .expect("producers lock")
            .insert(service.to_owned(), db.clone());
    }

    async fn bind(&self, queues: &[QueueSpec]) -> anyhow::Result<()> {
        for q in queues {
            let keys: Vec<&str> = q.routing_keys.iter().map(String::as_str).collect();
            EmbeddedBus::bind(self, &q.service, &keys);
        }
        Ok(self.open_feeds(queues).await?)
    }

    async fn consume(
        self: Arc<Self>,
        db: Db,
        handler: Arc<dyn EventHandler>,
        shutdown: CancellationToken,
    ) {
        let name = handler.consumer();
        self.bind(name, handler.routing_keys());
        let subscriber = self.subscriber(name);
        let open = || {
            let (bus, subscriber) = (self.clone(), subscriber.clone());
            async move {
                let feeds = subscriber.feeds();
                Ok(EmbeddedInlet {
                    bus,
                    name,
                    reached: vec![None; feeds.len()],
                    parked: vec![Vec::new(); feeds.len()],
                    holds: Vec::new(),
                    feeds,
                    subscriber,
                    swept: None,
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
        Ok(self.depths(services).await?)
    }

    fn dead_letters(self: Arc<Self>, _services: Vec<String>) -> Arc<dyn DeadLetterQueues> {
        self
    }
}

/// A subscriber's end of the bus: the outboxes it reads past its cursors,
/// and its queue in `bus.db`.
struct EmbeddedInlet {
    bus: Arc<EmbeddedBus>,
    name: &'static str,
    subscriber: Arc<Subscriber>,
    feeds: Vec<Arc<Feed>>,
    /// When the queue and every feed were last read, woken or not.
    swept: Option<Instant>,
    /// Per feed, the last row the batch in hand read: where its cursor goes
    /// once that batch is settled.
    reached: Vec<Option<i64>>,
    /// The holds it honours, as of its last sweep.
    holds: Vec<Hold>,
    /// Per feed, rows it parked under a hold that still hold a secret:
    /// dropped once its cursor passed them.
    parked: Vec<Vec<(String, i64)>>,
}

impl EmbeddedInlet {
    /// Saves the cursors if they moved longer than `after` ago.
    async fn save_after(&self, after: Duration) -> Result<(), DbError> {
        match self.subscriber.unsaved() {
            Some(age) if age >= after => self.bus.save_cursors(self.name, &self.subscriber).await,
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Inlet for EmbeddedInlet {
    type Delivery = Delivery;

    async fn next_batch(
        &mut self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Vec<Delivery>>> {
        while !shutdown.is_cancelled() {
            self.save_after(CURSOR_SAVE_EVERY).await?;
            let sweep = self.swept.is_none_or(|at| at.elapsed() >= POLL);
            if sweep {
                self.swept = Some(Instant::now());
                self.holds = self.bus.holds(self.name).await?;
            }
            let mut batch = Vec::new();
            if self.subscriber.queued.swap(false, Ordering::AcqRel) | sweep {
                batch = self.bus.fetch(self.name, BATCH as i64).await?;
            }
            let mut more = false;
            for (i, feed) in self.feeds.iter().enumerate() {
                let room = BATCH.saturating_sub(batch.len());
                if room == 0 {
                    more = true;
                    break;
                }
                if !(feed.dirty.swap(false, Ordering::AcqRel) | sweep) {
                    continue;
                }
                let mut read = feed.read(i, room).await?;
                if read.full {
                    feed.dirty.store(true, Ordering::Release);
                    more = true;
                }
                if !self.holds.is_empty() {
                    let (held, taken) = read
                        .taken
                        .into_iter()
                        .partition::<Vec<_>, _>(|d| self.holds.iter().any(|h| h.keeps(d)));
                    read.taken = taken;
                    if !held.is_empty() {
                        self.bus.park(self.name, &held).await?;
                    }
                    self.parked[i].extend(held.iter().filter_map(|d| match d.origin {
                        Origin::Outbox {
                            seq, secret: true, ..
                        } => Some((d.routing_key.clone(), seq)),
                        _ => None,
                    }));
                }
                if read.taken.is_empty() {
                    // Nothing it takes (or all of it parked): nothing to
                    // settle before passing.
                    if let Some(last) = read.last {
                        feed.cursor.fetch_max(last, Ordering::AcqRel);
                    }
                    let parked = std::mem::take(&mut self.parked[i]);
                    if !parked.is_empty() {
                        self.bus.clear_secrets(feed, parked).await;
                    }
                    continue;
                }
                self.reached[i] = read.last;
                for delivery in read.taken {
                    for _ in 1..self.bus.copies_of_one() {
                        batch.push(delivery.clone());
                    }
                    batch.push(delivery);
                }
            }
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
            if more {
                continue;
            }
            let unsaved = self.subscriber.unsaved().is_some();
            let wait = if unsaved {
                CURSOR_SAVE_IDLE
            } else {
                POLL.saturating_sub(self.swept.map_or(POLL, |at| at.elapsed()))
            };
            tokio::select! {
                _ = self.subscriber.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {
                    if unsaved {
                        self.save_after(Duration::ZERO).await?;
                    }
                }
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
        self.bus.settle(self.name, &outcomes).await?;
        for (feed, reached) in self.feeds.iter().zip(&mut self.reached) {
            if let Some(at) = reached.take() {
                feed.cursor.fetch_max(at, Ordering::AcqRel);
            }
        }
        for (i, feed) in self.feeds.iter().enumerate() {
            let mut rows: Vec<(String, i64)> = outcomes
                .iter()
                .filter_map(|(d, _)| match d.origin {
                    Origin::Outbox {
                        feed,
                        seq,
                        secret: true,
                    } if feed == i => Some((d.routing_key.clone(), seq)),
                    _ => None,
                })
                .collect();
            rows.append(&mut self.parked[i]);
            rows.dedup();
            let unclear = !feed.unclear.lock().expect("unclear lock").is_empty();
            if !rows.is_empty() || unclear {
                self.bus.clear_secrets(feed, rows).await;
            }
        }
        Ok(())
    }

    async fn close(self) {
        if let Err(e) = self.save_after(Duration::ZERO).await {
            tracing::warn!(consumer = self.name, error = %e, "cursors not saved; the events since are delivered again");
        }
    }
}
