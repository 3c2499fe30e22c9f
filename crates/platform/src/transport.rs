//! How events travel between services, whichever carries them: the
//! embedded durable bus ([`crate::bus`], every service in one process) or
//! RabbitMQ ([`crate::amqp`], one process per service).
//!
//! A [`Transport`] is all a host needs of either: it takes what the outbox
//! relay publishes, binds the queues of the consumers of those events before
//! the first publish, feeds each consumer its queue, keeps what cannot be
//! handled as dead letters an operator can list, replay or purge, and says
//! whether it is ready. What a delivery goes through is written once, here:
//! a batch is taken from the queue, handled in one transaction with the
//! inbox ([`consumer::handle_batch`]), and each delivery is settled (acked,
//! retried later or dead-lettered) by the one [`RetryPolicy`]. A transport
//! only says how a batch is taken and how a settlement is carried out
//! ([`Inlet`]).

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::consumer::{self, EventHandler, RetryPolicy};
use crate::db::Db;
use crate::dead_letters::DeadLetterQueues;
use crate::metrics::{self, Delivery};
use crate::outbox::OutboxRecord;
use crate::reconnect::Reconnect;

/// Where the outbox relay hands events.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Returns only once every event is durably accepted.
    async fn publish(&self, events: &[OutboxRecord]) -> anyhow::Result<()>;
}

/// A consuming service's queue and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub service: String,
    pub routing_keys: Vec<String>,
}

impl QueueSpec {
    pub fn new(service: &str, routing_keys: &[&str]) -> QueueSpec {
        QueueSpec {
            service: service.to_owned(),
            routing_keys: routing_keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }
}

/// What became of a delivery after its handler ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    Ack,
    /// Try again after `delay_ms`.
    Retry {
        delay_ms: u64,
        error: String,
    },
    /// Give up: move to the dead-letter queue.
    DeadLetter {
        error: String,
    },
}

/// The embedded bus or RabbitMQ, as a host uses it.
#[async_trait]
pub trait Transport: Publisher + 'static {
    /// What `/ready` calls it: "bus" or "broker".
    fn kind(&self) -> &'static str;

    /// Tells it of a service this host runs, and its storage, before
    /// [`Transport::bind`]: the embedded bus reads that service's outbox as
    /// its subscribers' queue.
    fn attach(&self, _service: &str, _db: &Db) {}

    /// Makes `queues` exist and take their events, before anything is
    /// published: start order can never lose an event.
    async fn bind(&self, queues: &[QueueSpec]) -> anyhow::Result<()>;

    /// Feeds `handler` its queue, applied to `db`, until `shutdown`; a lost
    /// connection is re-established with backoff.
    async fn consume(
        self: Arc<Self>,
        db: Db,
        handler: Arc<dyn EventHandler>,
        shutdown: CancellationToken,
    );

    /// Whether it answers (for `/ready`); the error is for the log.
    async fn check(&self) -> Result<(), String>;

    /// Deliveries waiting, per consuming service in `services`.
    async fn queue_depths(&self, services: &[String]) -> anyhow::Result<Vec<(String, i64)>>;

    /// The dead letters of `services`, to list, replay or purge.
    fn dead_letters(self: Arc<Self>, services: Vec<String>) -> Arc<dyn DeadLetterQueues>;

    /// Releases connections at shutdown, once nothing publishes any more.
    async fn close(&self) {}
}

/// One delivery of a batch, as the shared consumer loop sees it.
pub struct Incoming<'a> {
    pub body: &'a str,
    pub event_id: &'a str,
    pub routing_key: &'a str,
    /// Failed attempts before this one.
    pub attempts: u32,
}

/// A consumer's end of its queue: how one transport takes a batch and
/// carries out what became of each delivery.
#[async_trait]
pub trait Inlet: Send + Sized {
    type Delivery: Send + Sync;

    /// The next batch (never empty), or `None` once `shutdown` is cancelled.
    async fn next_batch(
        &mut self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Vec<Self::Delivery>>>;

    fn incoming<'d>(&self, delivery: &'d Self::Delivery) -> Incoming<'d>;

    /// Acks, retries or dead-letters each delivery, never losing one: an
    /// error leaves the unsettled ones to be delivered again.
    async fn settle(&mut self, outcomes: Vec<(Self::Delivery, Settlement)>) -> anyhow::Result<()>;

    /// Ends the inlet cleanly (at shutdown).
    async fn close(self) {}
}

/// Consumes through inlets `open` makes, until `shutdown`: each lost inlet
/// (a dropped connection, a storage error) is opened again with backoff.
/// `attached` is told whether a consumer is attached (for readiness).
pub async fn run<I, F, Fut>(
    name: &'static str,
    open: F,
    db: Db,
    handler: Arc<dyn EventHandler>,
    policy: RetryPolicy,
    shutdown: CancellationToken,
    attached: impl Fn(bool) + Send + Sync,
) where
    I: Inlet,
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = anyhow::Result<I>> + Send,
{
    let mut reconnect = Reconnect::default();
    while !shutdown.is_cancelled() {
        let pumped = async {
            let mut inlet = open().await?;
            attached(true);
            reconnect.succeeded();
            pump(&mut inlet, &db, handler.as_ref(), &policy, &shutdown).await?;
            inlet.close().await;
            Ok::<_, anyhow::Error>(())
        };
        match pumped.await {
            Ok(()) => break,
            Err(e) => {
                attached(false);
                reconnect
                    .pause(&shutdown, |delay| {
                        tracing::warn!(consumer = name, error = %e, retry_in_ms = delay.as_millis() as u64, "consumer lost its queue; reconnecting");
                    })
                    .await;
            }
        }
    }
}

/// Handles batch after batch until the inlet says `shutdown` came.
async fn pump<I: Inlet>(
    inlet: &mut I,
    db: &Db,
    handler: &dyn EventHandler,
    policy: &RetryPolicy,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let name = handler.consumer();
    while let Some(batch) = inlet.next_batch(shutdown).await? {
        crate::chaos::maybe_panic_in_consumer();
        let results = {
            let bodies: Vec<&str> = batch.iter().map(|d| inlet.incoming(d).body).collect();
            consumer::handle_batch(db, handler, &bodies).await
        };
        let outcomes: Vec<(I::Delivery, Settlement)> = batch
            .into_iter()
            .zip(results)
            .map(|(delivery, result)| {
                let settlement = match result {
                    Ok(()) => Settlement::Ack,
                    Err(e) => {
                        let incoming = inlet.incoming(&delivery);
                        let failed = incoming.attempts + 1;
                        let settlement = policy.settle(&e, failed);
                        log_failure(name, &incoming, failed, &settlement);
                        settlement
                    }
                };
                (delivery, settlement)
            })
            .collect();
        crate::chaos::maybe_crash_before_ack();
        inlet.settle(outcomes).await?;
    }
    Ok(())
}

/// One log line and one count per failed delivery, whichever transport
/// carried it.
fn log_failure(consumer: &str, d: &Incoming<'_>, failed_attempts: u32, settlement: &Settlement) {
    let (event_id, routing_key) = (d.event_id, d.routing_key);
    let event_type = crate::events::type_of(routing_key);
    match settlement {
        Settlement::Ack => {}
        Settlement::Retry { .. } => metrics::delivered(consumer, event_type, Delivery::Retried),
        Settlement::DeadLetter { .. } => {
            metrics::delivered(consumer, event_type, Delivery::DeadLettered)
        }
    }
    match settlement {
        Settlement::Ack => {}
        Settlement::Retry { delay_ms, error } => tracing::warn!(
            consumer,
            event_id,
            routing_key,
            attempt = failed_attempts,
            retry_in_ms = delay_ms,
            error = %error,
            "event handling failed; will retry"
        ),
        Settlement::DeadLetter { error } => tracing::error!(
            consumer,
            event_id,
            routing_key,
            attempts = failed_attempts,
            error = %error,
            "event moved to the dead-letter queue"
        ),
    }
}
