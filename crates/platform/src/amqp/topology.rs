//! What exists on the broker: the events exchange, each consumer's queue
//! and bindings, its retry queues and its dead-letter queue; declared
//! idempotently by whoever needs them first.

use lapin::options::{
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};

use super::{close, connect, long_string, Broker, QueueType};

pub(super) fn durable() -> ExchangeDeclareOptions {
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

impl Broker {
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
    pub(super) async fn declare_queue(
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
