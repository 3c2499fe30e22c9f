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
//! consumer of the events it emits (given by `Transport::bind`), and it
//! publishes those events `mandatory`, so an event that reaches no queue
//! comes back and stays in the outbox instead of being confirmed into the
//! void.
//!
//! Messages are persistent; publisher confirms are pipelined (a whole batch
//! is sent, then the confirms are awaited); consumers ack manually, only
//! after their local transaction committed, with a bounded prefetch. Events
//! travel in CloudEvents structured mode (the envelope as JSON) and their
//! attributes are repeated as `cloudEvents:*` headers (AMQP binding).

mod consumer;
mod dead_letters;
mod publisher;
mod topology;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::ConfirmSelectOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub use crate::transport::QueueSpec;
pub use dead_letters::{deliver_to, RabbitDeadLetters};

use crate::consumer::{EventHandler, RetryPolicy};
use crate::db::Db;
use crate::dead_letters::DeadLetterQueues;
use crate::transport::{self, Transport};

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
/// measured (docs/performance.md), the shortest with the best
/// throughput.
pub const DEFAULT_BATCH_LINGER_MS: u64 = 10;

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
            dead_letter_max: crate::dead_letters::DEFAULT_MAX,
        }
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

pub(crate) async fn connect(url: &str) -> lapin::Result<Connection> {
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

/// How every event message is sent: CloudEvents structured mode in JSON
/// (the body is the envelope).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// Every event message is persistent.
pub const DELIVERY_MODE: u8 = 2;

/// The envelope attributes a published event repeats as headers, each as
/// `cloudEvents:<attribute>` (the CloudEvents AMQP binding's prefix):
/// enough to route or filter on without reading the body.
pub const HEADER_ATTRIBUTES: [&str; 8] = [
    "id",
    "type",
    "source",
    "subject",
    "time",
    "specversion",
    "correlationid",
    "traceparent",
];

/// The header that repeats `attribute`.
pub fn header_name(attribute: &str) -> String {
    format!("cloudEvents:{attribute}")
}

/// What every event message is, whatever moves it (a publish, a retry, a
/// replay).
fn event_message() -> lapin::BasicProperties {
    lapin::BasicProperties::default()
        .with_delivery_mode(DELIVERY_MODE)
        .with_content_type(CONTENT_TYPE.into())
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
    /// The queues of the consumers of what this process publishes
    /// ([`Transport::bind`]): declared (with their bindings) whenever the
    /// publishing channel opens, whether or not those consumers ever
    /// started, so that start order cannot lose an event.
    consumers: RwLock<Vec<QueueSpec>>,
}

impl Broker {
    pub fn new(config: AmqpConfig) -> Arc<Broker> {
        Arc::new(Broker {
            consumers: RwLock::new(Vec::new()),
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
                topology::durable(),
                FieldTable::default(),
            )
            .await?;
        let consumers = self.consumers.read().expect("consumers lock").clone();
        for queue in &consumers {
            self.declare_queue(&channel, &queue.service, &queue.routing_keys)
                .await?;
        }
        *guard = Some((conn, channel.clone()));
        tracing::info!("connected to the broker for publishing");
        Ok(channel)
    }

    /// Whether some consumer's queue is bound to `routing_key`: such events
    /// are published `mandatory`, the others (nobody wants them) are not.
    fn is_consumed(&self, routing_key: &str) -> bool {
        self.consumers
            .read()
            .expect("consumers lock")
            .iter()
            .any(|q| q.routing_keys.iter().any(|k| k == routing_key))
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
}

#[async_trait]
impl Transport for Broker {
    fn kind(&self) -> &'static str {
        "broker"
    }

    async fn bind(&self, queues: &[QueueSpec]) -> anyhow::Result<()> {
        {
            let mut consumers = self.consumers.write().expect("consumers lock");
            for q in queues {
                if !consumers.contains(q) {
                    consumers.push(q.clone());
                }
            }
        }
        // Declared when the publishing channel (re)opens.
        self.reset().await;
        Ok(())
    }

    async fn consume(
        self: Arc<Self>,
        db: Db,
        handler: Arc<dyn EventHandler>,
        shutdown: CancellationToken,
    ) {
        let (name, keys) = (handler.consumer(), handler.routing_keys());
        let open = || consumer::RabbitInlet::open(&self, name, keys);
        let attached = |up: bool| self.consuming.store(up, Ordering::Relaxed);
        let policy = self.config.retry.clone();
        transport::run(name, open, db, handler, policy, shutdown, attached).await;
    }

    async fn check(&self) -> Result<(), String> {
        if self.is_ready().await {
            Ok(())
        } else {
            Err("not connected".into())
        }
    }

    async fn queue_depths(&self, services: &[String]) -> anyhow::Result<Vec<(String, i64)>> {
        let mut depths = Vec::with_capacity(services.len());
        for service in services {
            depths.push((
                service.clone(),
                i64::from(self.message_count(service).await?),
            ));
        }
        Ok(depths)
    }

    fn dead_letters(self: Arc<Self>, services: Vec<String>) -> Arc<dyn DeadLetterQueues> {
        Arc::new(RabbitDeadLetters::new(self.config.clone(), services))
    }

    async fn close(&self) {
        Broker::close(self).await;
    }
}
