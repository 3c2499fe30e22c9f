//! The machine's own ceilings, measured with Agora's storage and broker
//! settings: what `agora bench` compares the order load against.
//!
//! A figure of orders per second says little on a host whose speed drifts
//! from one day to the next; the same figure as a fraction of what this
//! machine's storage and broker do, measured in the same run, says how
//! close Agora is to the limit. Each reference runs the platform's own code
//! (the storage layer's transactions, the inbox, the outbox, the broker's
//! pipelined publisher) with no service around it:
//!
//! - [`saga_steps`]: one saga step a transaction, from several clients at
//!   once: the inbox insert of the event that arrived, the guarded update
//!   of the state it moves, the outbox insert of the event it causes, the
//!   commit (durable on PostgreSQL; in WAL mode on SQLite, as Agora runs it).
//! - [`broker_round_trip`]: persistent messages published with pipelined
//!   confirms (the outbox relay's way), then consumed with manual acks,
//!   one `multiple` ack a batch (the consumers' way).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use uuid::Uuid;

use crate::amqp::{AmqpConfig, Broker, QueueSpec};
use crate::consumer::{self, EventHandler, HandlerError, BATCH};
use crate::db::{Db, Tx};
use crate::events::{Envelope, Money, PaymentRequested, PaymentSucceeded};
use crate::outbox::OutboxRecord;
use crate::params;
use crate::transport::{Publisher, Transport};

/// Operations done in a measured time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rate {
    pub operations: u64,
    pub secs: f64,
    pub per_sec: f64,
}

impl Rate {
    pub fn new(operations: u64, elapsed: Duration) -> Rate {
        let secs = elapsed.as_secs_f64();
        Rate {
            operations,
            secs,
            per_sec: if secs > 0.0 {
                operations as f64 / secs
            } else {
                0.0
            },
        }
    }

    /// Both runs as one: all their operations over all their time.
    pub fn with(&self, other: &Rate) -> Rate {
        Rate::new(
            self.operations + other.operations,
            Duration::from_secs_f64(self.secs + other.secs),
        )
    }
}

/// Clients running saga steps at once: as many as pgbench's reference run,
/// enough to keep two cores busy through every commit's wait.
pub const STEP_CLIENTS: usize = 8;

const STEP_TABLE: &str = "CREATE TABLE IF NOT EXISTS bench_orders (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TEXT NOT NULL
)";

/// One client's order, moved one step by each event it handles.
struct Step {
    order_id: Uuid,
    version: AtomicI64,
}

#[async_trait]
impl EventHandler for Step {
    fn consumer(&self) -> &'static str {
        "bench"
    }

    fn routing_keys(&self) -> &'static [&'static str] {
        &[]
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let request: PaymentRequested = event.decode()?;
        let version = self.version.load(Ordering::Relaxed);
        // Guarded as the order store guards a saga step: by the version read.
        let changed = tx
            .execute(
                "UPDATE bench_orders SET status = $2, version = version + 1, updated_at = $3
                 WHERE id = $1 AND version = $4",
                params![
                    self.order_id,
                    "PAYMENT_REQUESTED",
                    crate::clock::now_rfc3339(),
                    version
                ],
            )
            .await?;
        if changed != 1 {
            return Err(HandlerError::permanent("the bench order moved under us"));
        }
        tx.publish(&Envelope::caused_by(
            &PaymentSucceeded {
                order_id: request.order_id,
                payment_id: Uuid::now_v7(),
                amount: request.amount,
            },
            event,
        ))
        .await?;
        self.version.store(version + 1, Ordering::Relaxed);
        Ok(())
    }
}

/// Saga steps per second on `db` (a fresh database: it gains a table and
/// the platform's outbox and inbox), from [`STEP_CLIENTS`] clients for
/// `duration`. `progress` is told of each step.
pub async fn saga_steps(
    db: &Db,
    duration: Duration,
    progress: impl Fn() + Send + Sync + 'static,
) -> anyhow::Result<Rate> {
    db.migrate(&[crate::outbox::MIGRATIONS]).await?;
    let mut tx = db.begin().await?;
    tx.execute(STEP_TABLE, &[]).await?;
    let mut clients = Vec::new();
    for _ in 0..STEP_CLIENTS {
        let order_id = Uuid::now_v7();
        tx.execute(
            "INSERT INTO bench_orders (id, status, version, updated_at) VALUES ($1, $2, 0, $3)",
            params![order_id, "CREATED", crate::clock::now_rfc3339()],
        )
        .await?;
        clients.push(Arc::new(Step {
            order_id,
            version: AtomicI64::new(0),
        }));
    }
    tx.commit().await?;

    let steps = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(progress);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for step in clients {
        let (db, steps, progress) = (db.clone(), steps.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let arrived = Envelope::root(&PaymentRequested {
                    order_id: step.order_id,
                    customer_id: "bench-customer".into(),
                    amount: Money {
                        amount: 2_500,
                        currency: "EUR".into(),
                    },
                    payment_token: "tok_visa".into(),
                });
                consumer::apply(&db, step.as_ref(), &arrived)
                    .await
                    .map_err(|e| anyhow::anyhow!("a saga step failed: {e}"))?;
                steps.fetch_add(1, Ordering::Relaxed);
                progress();
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Rate::new(steps.load(Ordering::Relaxed), started.elapsed()))
}

/// What the broker did: persistent publishes with pipelined confirms, and
/// consumes with acks, each on its own.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BrokerRates {
    pub publish: Rate,
    pub consume: Rate,
}

impl BrokerRates {
    /// Both runs as one.
    pub fn with(&self, other: &BrokerRates) -> BrokerRates {
        BrokerRates {
            publish: self.publish.with(&other.publish),
            consume: self.consume.with(&other.consume),
        }
    }
}

/// Publishers sending batches at once, as the services' relays do.
const PUBLISHERS: usize = 4;
/// Events in one publish: what a relay sends when it has a backlog, in the
/// consumers' batch size so that neither side's batching flatters the other.
const PUBLISH_BATCH: usize = BATCH;

/// Publishes `messages` persistent messages (an event envelope each) to a
/// queue of its own, all confirmed, then consumes and acks them all; the
/// queue and exchange are deleted afterwards. `progress` is told of each
/// message published and each consumed.
pub async fn broker_round_trip(
    url: &str,
    messages: u64,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> anyhow::Result<BrokerRates> {
    let config = AmqpConfig {
        prefix: format!("agora-bench-{}.", Uuid::now_v7().simple()),
        ..AmqpConfig::new(url)
    };
    let broker = Broker::new(config.clone());
    let service = "sink";
    let routing_key = "payment.succeeded";
    broker
        .bind(&[QueueSpec::new(service, &[routing_key])])
        .await?;
    let outcome = round_trip(&broker, &config, service, routing_key, messages, progress).await;
    let deleted = broker.delete_topology(&[service]).await;
    broker.close().await;
    let rates = outcome?;
    deleted?;
    Ok(rates)
}

async fn round_trip(
    broker: &Arc<Broker>,
    config: &AmqpConfig,
    service: &str,
    routing_key: &str,
    messages: u64,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> anyhow::Result<BrokerRates> {
    let envelope = Envelope::root(&PaymentSucceeded {
        order_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        amount: Money {
            amount: 2_500,
            currency: "EUR".into(),
        },
    });
    let body = serde_json::to_string(&envelope)?;
    let progress = Arc::new(progress);
    let batches = messages.div_ceil(PUBLISH_BATCH as u64);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        let (broker, next, progress) = (broker.clone(), next.clone(), progress.clone());
        let (body, routing_key) = (body.clone(), routing_key.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let batch = next.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                let first = batch * PUBLISH_BATCH as u64;
                let size = (messages - first).min(PUBLISH_BATCH as u64);
                let records: Vec<OutboxRecord> = (0..size)
                    .map(|_| OutboxRecord {
                        id: Uuid::now_v7().to_string(),
                        routing_key: routing_key.clone(),
                        envelope: body.clone(),
                    })
                    .collect();
                broker.publish(&records).await?;
                progress(size);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let publish = Rate::new(messages, started.elapsed());

    let conn = crate::amqp::connect(&config.url).await?;
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            &config.queue(service),
            "agora-bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let mut consumed = 0u64;
    let mut unacked = 0usize;
    while consumed < messages {
        let delivery = tokio::time::timeout(Duration::from_secs(30), deliveries.next())
            .await
            .map_err(|_| anyhow::anyhow!("the broker stopped delivering at {consumed}"))?
            .ok_or_else(|| anyhow::anyhow!("the consumer was cancelled at {consumed}"))??;
        // What a consumer does first with each delivery.
        consumer::parse_envelope(std::str::from_utf8(&delivery.data)?)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        consumed += 1;
        unacked += 1;
        if unacked == BATCH || consumed == messages {
            delivery.ack(BasicAckOptions { multiple: true }).await?;
            progress(unacked as u64);
            unacked = 0;
        }
    }
    let consume = Rate::new(consumed, started.elapsed());
    let _ = channel.close(200, "done").await;
    let _ = conn.close(200, "done").await;
    Ok(BrokerRates { publish, consume })
}
