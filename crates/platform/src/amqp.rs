//! RabbitMQ transport of the distributed mode.
//!
//! Topology, declared idempotently by every service at start (names carry a
//! configurable prefix so that test runs never share anything):
//!
//! - `<prefix>events`: durable topic exchange for every domain event;
//! - `<prefix><service>`: one durable queue per consuming service, bound to
//!   exactly the routing keys its handler declares;
//! - `<prefix><service>.retry.<n>`: delayed retries. A failed message is
//!   republished there with attempt count `n` and a jittered per-message TTL;
//!   the queue's own TTL (the ceiling for that attempt) dead-letters it back
//!   into the service queue. One queue per attempt keeps every message in a
//!   queue on the same ceiling, so none waits behind a longer one; all of it
//!   lives in the broker and survives its restart;
//! - `<prefix>dead-letters`: a direct exchange, and `<prefix><service>.dlq`
//!   bound to it, receiving poison and exhausted messages with the error,
//!   the original routing key, the attempt count and the time as headers.
//!
//! A publisher never relies on its consumers having started first: when its
//! publishing channel opens it declares the queue and bindings of every
//! consumer of the events it emits ([`AmqpConfig::consumers`]), and it
//! publishes those events `mandatory`, so an event that reaches no queue
//! comes back and stays in the outbox instead of being confirmed into the
//! void.
//!
//! Messages are persistent; publisher confirms are pipelined (a whole batch
//! is sent, then the confirms are awaited); consumers ack manually, only
//! after their local transaction committed, with a bounded prefetch. Events
//! travel in CloudEvents structured mode (the envelope as JSON) and their
//! attributes are repeated as `cloudEvents:*` headers (AMQP binding).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::bus::{Publisher, Settlement};
use crate::consumer::{gather, handle_batch, log_failure, EventHandler, RetryPolicy};
use crate::db::Db;
use crate::outbox::OutboxRecord;
use crate::reconnect::Reconnect;

/// Classic queues are the default: on a single broker node a quorum queue
/// replicates to nobody yet pays for its Raft log on every message. Quorum
/// queues are the choice on a three-node cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    Classic,
    Quorum,
}

impl std::str::FromStr for QueueType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            other => Err(format!("unknown queue type `{other}` (classic or quorum)")),
        }
    }
}

/// The consumer's default batch linger, in milliseconds: among the lingers
/// measured (ARCHITECTURE.md, Performance), the shortest with the best
/// throughput.
pub const DEFAULT_BATCH_LINGER_MS: u64 = 10;

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

#[derive(Debug, Clone)]
pub struct AmqpConfig {
    pub url: String,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
    /// Unacknowledged deliveries a consumer may hold.
    pub prefetch: u16,
    pub queue_type: QueueType,
    pub retry: RetryPolicy,
    /// How long a consumer waits after a delivery for more to join its
    /// batch: one transaction and one ack for many events.
    pub batch_linger: Duration,
    /// The queues of the consumers of what this process publishes: declared
    /// (with their bindings) before its first publish, whether or not those
    /// consumers ever started, so that start order cannot lose an event.
    pub consumers: Vec<QueueSpec>,
    /// Messages a service's dead-letter queue keeps; past it, the oldest
    /// are dropped (`x-max-length`, overflow `drop-head`).
    pub dead_letter_max: u32,
}

impl AmqpConfig {
    pub fn new(url: impl Into<String>) -> Self {
        AmqpConfig {
            url: url.into(),
            prefix: "agora.".into(),
            prefetch: 128,
            queue_type: QueueType::Classic,
            retry: RetryPolicy::default(),
            batch_linger: Duration::from_millis(DEFAULT_BATCH_LINGER_MS),
            consumers: Vec::new(),
            dead_letter_max: crate::dead_letters::DEFAULT_MAX,
        }
    }

    /// Whether some consumer's queue is bound to `routing_key`: such events
    /// are published `mandatory`, the others (nobody wants them) are not.
    fn is_consumed(&self, routing_key: &str) -> bool {
        self.consumers
            .iter()
            .any(|q| q.routing_keys.iter().any(|k| k == routing_key))
    }

    pub fn exchange(&self) -> String {
        format!("{}events", self.prefix)
    }
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}dead-letters", self.prefix)
    }
    pub fn queue(&self, service: &str) -> String {
        format!("{}{service}", self.prefix)
    }
    pub fn retry_queue(&self, service: &str, attempt: u32) -> String {
        format!("{}{service}.retry.{attempt}", self.prefix)
    }
    pub fn dead_letter_queue(&self, service: &str) -> String {
        format!("{}{service}.dlq", self.prefix)
    }
}

async fn connect(url: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(url, properties).await
}

/// Closes `conn` and waits (a second at most) for its I/O thread to end.
/// lapin runs each connection's I/O on a thread of its own over the tokio
/// reactor: one still running when the process's runtime shuts down logs
/// "Connection error … being shutdown" at ERROR, on a clean stop.
async fn close(conn: Connection, reason: &str) {
    let _ = conn.close(200, reason).await;
    let (ended, io_loop_ended) = tokio::sync::oneshot::channel();
    // `run` joins the I/O thread; a plain thread, so a connection that
    // never ends cannot hold up the runtime's shutdown.
    std::thread::spawn(move || {
        let _ = conn.run();
        let _ = ended.send(());
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), io_loop_ended).await;
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// A dead-letter queue's bound: at most `max` messages, the oldest
/// dropped first.
fn bounded_by(max: u32) -> Vec<(&'static str, AMQPValue)> {
    vec![
        (
            "x-max-length",
            AMQPValue::LongLongInt(i64::from(max.max(1))),
        ),
        ("x-overflow", long_string("drop-head")),
    ]
}

/// Declares a dead-letter queue with `args` on a channel of its own: one
/// made before it had a maximum (or by an instance with another) refuses
/// other arguments (406), which closes the channel it was asked on; such a
/// queue is taken as it is, with a warning, instead of stopping the
/// consumer.
async fn declare_dead_letter_queue(
    conn: &Connection,
    queue: &str,
    args: FieldTable,
) -> lapin::Result<()> {
    let own = conn.create_channel().await?;
    match own.queue_declare(queue, durable_queue(), args).await {
        Ok(_) => {
            let _ = own.close(200, "declared").await;
            Ok(())
        }
        Err(lapin::Error::ProtocolError(e)) if e.get_id() == 406 => {
            tracing::warn!(
                queue,
                "the dead-letter queue exists with other arguments (no maximum?): taken as it is"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn long_string(value: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(value.into().into())
}

/// The broker as seen by one service process: a publishing channel with
/// confirms, re-established on demand after a connection loss.
pub struct Broker {
    config: AmqpConfig,
    publishing: Mutex<Option<(Connection, Channel)>>,
    consuming: AtomicBool,
}

impl Broker {
    pub fn new(config: AmqpConfig) -> Arc<Broker> {
        Arc::new(Broker {
            config,
            publishing: Mutex::new(None),
            consuming: AtomicBool::new(true),
        })
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// Whether the publishing connection is up and every consumer of this
    /// process is attached (for `/ready`).
    pub async fn is_ready(&self) -> bool {
        if !self.consuming.load(Ordering::Relaxed) {
            return false;
        }
        match self.channel().await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "broker not reachable");
                false
            }
        }
    }

    async fn channel(&self) -> lapin::Result<Channel> {
        let mut guard = self.publishing.lock().await;
        if let Some((conn, channel)) = guard.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            tracing::warn!("lost the broker connection; reconnecting");
        }
        *guard = None;
        let conn = connect(&self.config.url).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                &self.config.exchange(),
                ExchangeKind::Topic,
                durable(),
                FieldTable::default(),
            )
            .await?;
        for queue in &self.config.consumers {
            self.declare_queue(&channel, &queue.service, &queue.routing_keys)
                .await?;
        }
        *guard = Some((conn, channel.clone()));
        tracing::info!("connected to the broker for publishing");
        Ok(channel)
    }

    async fn reset(&self) {
        *self.publishing.lock().await = None;
    }

    /// Closes the publishing connection (at shutdown, once nothing publishes).
    pub async fn close(&self) {
        if let Some((conn, _)) = self.publishing.lock().await.take() {
            close(conn, "shutdown").await;
        }
    }

    /// Declares `service`'s queue, its bindings, retry queues and DLQ (on
    /// `channel`, of `conn`).
    pub async fn declare(
        &self,
        conn: &Connection,
        channel: &Channel,
        service: &str,
        routing_keys: &[&str],
    ) -> lapin::Result<()> {
        let c = &self.config;
        let keys: Vec<String> = routing_keys.iter().map(|k| (*k).to_owned()).collect();
        self.declare_queue(channel, service, &keys).await?;
        channel
            .exchange_declare(
                &c.dead_letter_exchange(),
                ExchangeKind::Direct,
                durable(),
                FieldTable::default(),
            )
            .await?;
        let queue = c.queue(service);
        for attempt in 1..c.retry.max_attempts {
            let ceiling = c.retry.ceiling(attempt).as_millis().max(1) as i64;
            channel
                .queue_declare(
                    &c.retry_queue(service, attempt),
                    durable_queue(),
                    self.queue_args(vec![
                        ("x-message-ttl", AMQPValue::LongLongInt(ceiling)),
                        ("x-dead-letter-exchange", long_string("")),
                        ("x-dead-letter-routing-key", long_string(queue.clone())),
                    ]),
                )
                .await?;
        }
        let dlq = c.dead_letter_queue(service);
        declare_dead_letter_queue(conn, &dlq, self.queue_args(bounded_by(c.dead_letter_max)))
            .await?;
        channel
            .queue_bind(
                &dlq,
                &c.dead_letter_exchange(),
                service,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Declares the events exchange and `service`'s queue bound to
    /// `routing_keys`: all a publisher needs so that the queue takes its
    /// events before the service has ever started. (Retry queues and the
    /// DLQ are the consumer's own, declared with its settings.)
    async fn declare_queue(
        &self,
        channel: &Channel,
        service: &str,
        routing_keys: &[String],
    ) -> lapin::Result<()> {
        let c = &self.config;
        channel
            .exchange_declare(
                &c.exchange(),
                ExchangeKind::Topic,
                durable(),
                FieldTable::default(),
            )
            .await?;
        let queue = c.queue(service);
        channel
            .queue_declare(&queue, durable_queue(), self.queue_args(vec![]))
            .await?;
        for key in routing_keys {
            channel
                .queue_bind(
                    &queue,
                    &c.exchange(),
                    key,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// A queue's arguments: its type (every declarer must agree on it, so it
    /// is the deployment's setting) and `extra`.
    fn queue_args(&self, extra: Vec<(&str, AMQPValue)>) -> FieldTable {
        let mut args = FieldTable::default();
        let kind = match self.config.queue_type {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        };
        args.insert("x-queue-type".into(), long_string(kind));
        for (k, v) in extra {
            args.insert(k.into(), v);
        }
        args
    }

    /// Deletes what [`Broker::declare`] made for these services, and the
    /// exchanges (tests clean up after themselves with this).
    pub async fn delete_topology(&self, services: &[&str]) -> lapin::Result<()> {
        let conn = connect(&self.config.url).await?;
        let channel = conn.create_channel().await?;
        let c = &self.config;
        for service in services {
            let mut queues = vec![c.queue(service), c.dead_letter_queue(service)];
            queues.extend((1..c.retry.max_attempts).map(|n| c.retry_queue(service, n)));
            for q in queues {
                channel
                    .queue_delete(&q, QueueDeleteOptions::default())
                    .await?;
            }
        }
        channel
            .exchange_delete(&c.exchange(), Default::default())
            .await?;
        channel
            .exchange_delete(&c.dead_letter_exchange(), Default::default())
            .await?;
        close(conn, "cleanup").await;
        Ok(())
    }

    /// Messages waiting in a service's dead-letter queue.
    pub async fn dead_letter_count(&self, service: &str) -> lapin::Result<u32> {
        self.count(&self.config.dead_letter_queue(service)).await
    }

    /// Messages waiting in a service's queue.
    pub async fn message_count(&self, service: &str) -> lapin::Result<u32> {
        self.count(&self.config.queue(service)).await
    }

    async fn count(&self, queue: &str) -> lapin::Result<u32> {
        let channel = self.channel().await?;
        let q = channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(q.message_count())
    }
}

fn event_properties(record: &OutboxRecord) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Ok(envelope) = serde_json::from_str::<crate::events::Envelope>(&record.envelope) {
        for (name, value) in [
            ("id", envelope.id.to_string()),
            ("type", envelope.event_type),
            ("source", envelope.source),
            ("subject", envelope.subject),
            ("time", envelope.time),
            ("specversion", envelope.specversion),
            ("correlationid", envelope.correlationid),
            ("traceparent", envelope.traceparent),
        ] {
            headers.insert(format!("cloudEvents:{name}").into(), long_string(value));
        }
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/cloudevents+json".into())
        .with_message_id(record.id.clone().into())
        .with_headers(headers)
}

#[async_trait]
impl Publisher for Broker {
    async fn publish(&self, events: &[OutboxRecord]) -> anyhow::Result<()> {
        let channel = self.channel().await?;
        let exchange = self.config.exchange();
        // A chaos duplicate is the same message published twice.
        let copies: Vec<&OutboxRecord> = events
            .iter()
            .flat_map(|record| {
                let twice = crate::chaos::roll(crate::chaos::get().duplicate_rate);
                std::iter::repeat_n(record, 1 + usize::from(twice))
            })
            .collect();
        let sent = publish_confirmed(&channel, &copies, |record| Route {
            exchange: exchange.clone(),
            routing_key: record.routing_key.clone(),
            mandatory: self.config.is_consumed(&record.routing_key),
        });
        if let Err(e) = sent.await {
            self.reset().await;
            return Err(e);
        }
        Ok(())
    }
}

/// Where one message goes. A `mandatory` message that no queue takes comes
/// back (`basic.return`) instead of being confirmed and dropped.
struct Route {
    exchange: String,
    routing_key: String,
    mandatory: bool,
}

/// Publishes every record (where `route` says), all in flight at once,
/// then waits for each confirm: pipelined, never one by one. Fails if the
/// broker refused one or returned one that no queue took, so the caller
/// keeps the batch (in its outbox) and tries again.
async fn publish_confirmed(
    channel: &Channel,
    records: &[&OutboxRecord],
    route: impl Fn(&OutboxRecord) -> Route,
) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(records.len());
    for record in records {
        let Route {
            exchange,
            routing_key,
            mandatory,
        } = route(record);
        confirms.push((
            record,
            channel
                .basic_publish(
                    &exchange,
                    &routing_key,
                    BasicPublishOptions {
                        mandatory,
                        ..BasicPublishOptions::default()
                    },
                    record.envelope.as_bytes(),
                    event_properties(record),
                )
                .await?,
        ));
    }
    let mut unrouted = None;
    for (record, confirm) in confirms {
        match confirm.await? {
            Confirmation::Nack(_) => anyhow::bail!("the broker refused event {}", record.id),
            Confirmation::Ack(Some(_)) => {
                unrouted.get_or_insert_with(|| (record.id.clone(), record.routing_key.clone()));
            }
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
        }
    }
    if let Some((id, routing_key)) = unrouted {
        anyhow::bail!("event {id} ({routing_key}) reached no queue; it stays in the outbox");
    }
    Ok(())
}

fn header<'d>(delivery: &'d lapin::message::Delivery, name: &str) -> Option<&'d AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(&ShortString::from(name)))
}

fn header_u32(delivery: &lapin::message::Delivery, name: &str) -> u32 {
    header(delivery, name)
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(*n as u32),
            AMQPValue::LongInt(n) => Some(*n as u32),
            AMQPValue::LongUInt(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

const ATTEMPTS: &str = "x-agora-attempts";
const BATCH: usize = 64;

/// Consumes `handler`'s queue until `shutdown`, reconnecting with backoff
/// whenever the broker goes away.
pub async fn run_consumer(
    broker: Arc<Broker>,
    db: Db,
    handler: Arc<dyn EventHandler>,
    shutdown: CancellationToken,
) {
    let mut reconnect = Reconnect::default();
    while !shutdown.is_cancelled() {
        match consume(&broker, &db, handler.as_ref(), &shutdown, &mut reconnect).await {
            Ok(()) => break,
            Err(e) => {
                broker.consuming.store(false, Ordering::Relaxed);
                reconnect
                    .pause(&shutdown, |delay| {
                        tracing::warn!(consumer = handler.consumer(), error = %e, retry_in_ms = delay.as_millis() as u64, "consumer lost the broker; reconnecting");
                    })
                    .await;
            }
        }
    }
}

async fn consume(
    broker: &Broker,
    db: &Db,
    handler: &dyn EventHandler,
    shutdown: &CancellationToken,
    reconnect: &mut Reconnect,
) -> anyhow::Result<()> {
    let config = broker.config();
    let name = handler.consumer();
    let conn = connect(&config.url).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    broker
        .declare(&conn, &channel, name, handler.routing_keys())
        .await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            &config.queue(name),
            name,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    broker.consuming.store(true, Ordering::Relaxed);
    reconnect.succeeded();
    tracing::info!(consumer = name, queue = %config.queue(name), "consuming");
    loop {
        let first = tokio::select! {
            next = consumer.next() => next,
            _ = shutdown.cancelled() => {
                close(conn, "shutdown").await;
                return Ok(());
            }
        };
        let Some(first) = first else {
            anyhow::bail!("the consumer stream ended");
        };
        let batch = gather(first, &mut consumer, BATCH, config.batch_linger)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        crate::chaos::maybe_panic_in_consumer();
        let bodies: Vec<&str> = batch
            .iter()
            .map(|d| std::str::from_utf8(&d.data).unwrap_or(""))
            .collect();
        let results = handle_batch(db, handler, &bodies).await;
        crate::chaos::maybe_crash_before_ack();
        if results.iter().all(Result::is_ok) {
            let last = batch.last().expect("a batch is never empty");
            last.ack(BasicAckOptions { multiple: true }).await?;
            continue;
        }
        for (delivery, result) in batch.iter().zip(results) {
            if let Err(error) = result {
                let failed = header_u32(delivery, ATTEMPTS) + 1;
                let settlement = config.retry.settle(&error, failed);
                redirect(&channel, config, name, delivery, failed, &settlement).await?;
                let event_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                log_failure(
                    name,
                    delivery.routing_key.as_str(),
                    &event_id,
                    failed,
                    &settlement,
                );
            }
            delivery.ack(BasicAckOptions::default()).await?;
        }
    }
}

/// Moves a failed delivery to its retry queue or the dead-letter queue and
/// waits for the broker's confirm, so that acking the original loses nothing.
async fn redirect(
    channel: &Channel,
    config: &AmqpConfig,
    service: &str,
    delivery: &lapin::message::Delivery,
    failed: u32,
    settlement: &Settlement,
) -> anyhow::Result<()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPTS.into(), AMQPValue::LongLongInt(failed.into()));
    let base = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/cloudevents+json".into());
    let (exchange, routing_key, properties) = match settlement {
        Settlement::Ack => return Ok(()),
        Settlement::Retry { delay_ms, error } => {
            headers.insert("x-agora-last-error".into(), long_string(error.clone()));
            (
                String::new(),
                config.retry_queue(service, failed.min(config.retry.max_attempts - 1)),
                base.with_expiration((*delay_ms).max(1).to_string().into())
                    .with_headers(headers),
            )
        }
        Settlement::DeadLetter { error } => {
            headers.insert("x-agora-error".into(), long_string(error.clone()));
            headers.insert(
                "x-agora-original-routing-key".into(),
                long_string(delivery.routing_key.to_string()),
            );
            headers.insert(
                "x-agora-failed-at".into(),
                long_string(crate::clock::now_rfc3339()),
            );
            (
                config.dead_letter_exchange(),
                service.to_owned(),
                base.with_headers(headers),
            )
        }
    };
    publish_one(channel, &exchange, &routing_key, &delivery.data, properties).await
}

/// Publishes one message and waits for the broker's confirm: for moves that
/// are followed by an ack of the original, which must never lose it (so it
/// is `mandatory`: a message no queue takes is an error, not a success).
async fn publish_one(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<()> {
    let confirm = channel
        .basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Nack(_) => anyhow::bail!("the broker refused a message"),
        Confirmation::Ack(Some(_)) => {
            anyhow::bail!("no queue took a message sent to `{exchange}` with key `{routing_key}`")
        }
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
    }
}

/// The dead-letter queues of the named services on RabbitMQ.
pub struct RabbitDeadLetters {
    config: AmqpConfig,
    services: Vec<String>,
}

impl RabbitDeadLetters {
    pub fn new(config: AmqpConfig, services: Vec<String>) -> Self {
        RabbitDeadLetters { config, services }
    }
}

fn header_text(delivery: &lapin::message::Delivery, name: &str) -> String {
    header(delivery, name)
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

#[async_trait]
impl crate::dead_letters::DeadLetterQueues for RabbitDeadLetters {
    async fn act(
        &self,
        action: crate::dead_letters::Action,
        filter: &crate::dead_letters::Filter,
        dry_run: bool,
    ) -> anyhow::Result<Vec<crate::dead_letters::DeadLetter>> {
        use crate::dead_letters::{event_type_of, Action, DeadLetter};
        use lapin::options::{BasicGetOptions, BasicNackOptions};
        let conn = connect(&self.config.url).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let now = time::OffsetDateTime::now_utc();
        let mut acted = Vec::new();
        for service in &self.services {
            if filter.service.as_deref().is_some_and(|s| s != service) {
                continue;
            }
            // Take every message (held unacked, so each comes once), act on
            // the matching ones, put the rest back.
            let queue = self.config.dead_letter_queue(service);
            let mut held = Vec::new();
            while let Some(message) = channel
                .basic_get(&queue, BasicGetOptions::default())
                .await?
            {
                held.push(message.delivery);
            }
            for delivery in held {
                let body = String::from_utf8_lossy(&delivery.data).into_owned();
                let letter = DeadLetter {
                    service: service.clone(),
                    event_id: delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    event_type: event_type_of(&body),
                    routing_key: header_text(&delivery, "x-agora-original-routing-key"),
                    attempts: i64::from(header_u32(&delivery, ATTEMPTS)),
                    error: header_text(&delivery, "x-agora-error"),
                    failed_at: header_text(&delivery, "x-agora-failed-at"),
                    body,
                };
                let chosen = filter.matches(&letter, now);
                if !chosen || dry_run || action == Action::List {
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await?;
                } else {
                    if action == Action::Replay {
                        let properties = BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/cloudevents+json".into())
                            .with_message_id(letter.event_id.clone().into());
                        let queue = self.config.queue(service);
                        publish_one(&channel, "", &queue, &delivery.data, properties).await?;
                    }
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                if chosen {
                    acted.push(letter);
                }
            }
        }
        close(conn, "done").await;
        Ok(acted)
    }
}

/// Publishes events straight into one service's queue (a replay), keeping
/// their ids, with confirms awaited.
pub async fn deliver_to(
    config: &AmqpConfig,
    service: &str,
    events: &[OutboxRecord],
) -> anyhow::Result<()> {
    let conn = connect(&config.url).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = config.queue(service);
    let records: Vec<&OutboxRecord> = events.iter().collect();
    publish_confirmed(&channel, &records, |_| Route {
        exchange: String::new(),
        routing_key: queue.clone(),
        mandatory: true,
    })
    .await?;
    close(conn, "done").await;
    Ok(())
}
