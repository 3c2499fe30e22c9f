//! A service's consumer on its RabbitMQ queue: batches gathered within the
//! linger, one multiple ack when all succeeded, and each failure moved to
//! its retry queue or the dead-letter queue (confirmed) before its ack.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;

use super::publisher::publish_one;
use super::{close, connect, long_string, AmqpConfig, Broker};
use crate::consumer::{gather, Linger, BATCH};
use crate::transport::{Incoming, Inlet, Settlement};

pub(super) fn header<'d>(
    delivery: &'d lapin::message::Delivery,
    name: &str,
) -> Option<&'d AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(&ShortString::from(name)))
}

pub(super) fn header_u32(delivery: &lapin::message::Delivery, name: &str) -> u32 {
    header(delivery, name)
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(*n as u32),
            AMQPValue::LongInt(n) => Some(*n as u32),
            AMQPValue::LongUInt(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// The failed attempts so far, carried as a header across retries.
pub(super) const ATTEMPTS: &str = "x-agora-attempts";

/// One consumer's connection, channel and subscription.
pub(super) struct RabbitInlet {
    conn: Option<Connection>,
    channel: Channel,
    consumer: lapin::Consumer,
    config: AmqpConfig,
    service: &'static str,
    linger: Linger,
}

impl RabbitInlet {
    /// Connects, declares `service`'s topology and starts consuming.
    pub(super) async fn open(
        broker: &Broker,
        service: &'static str,
        routing_keys: &'static [&'static str],
    ) -> anyhow::Result<RabbitInlet> {
        let config = broker.config().clone();
        let conn = connect(&config.url).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        broker
            .declare(&conn, &channel, service, routing_keys)
            .await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                &config.queue(service),
                service,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(consumer = service, queue = %config.queue(service), "consuming");
        Ok(RabbitInlet {
            conn: Some(conn),
            channel,
            consumer,
            linger: Linger::new(config.batch_linger),
            config,
            service,
        })
    }
}

#[async_trait::async_trait]
impl Inlet for RabbitInlet {
    type Delivery = lapin::message::Delivery;

    async fn next_batch(
        &mut self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Vec<Self::Delivery>>> {
        let first = tokio::select! {
            next = self.consumer.next() => next,
            _ = shutdown.cancelled() => return Ok(None),
        };
        let Some(first) = first else {
            anyhow::bail!("the consumer stream ended");
        };
        let batch = gather(first, &mut self.consumer, BATCH, self.linger.next())
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        self.linger.took(batch.len());
        Ok(Some(batch))
    }

    fn incoming<'d>(&self, d: &'d Self::Delivery) -> Incoming<'d> {
        Incoming {
            body: std::str::from_utf8(&d.data).unwrap_or(""),
            event_id: d
                .properties
                .message_id()
                .as_ref()
                .map_or("", |id| id.as_str()),
            routing_key: d.routing_key.as_str(),
            attempts: header_u32(d, ATTEMPTS),
        }
    }

    async fn settle(&mut self, outcomes: Vec<(Self::Delivery, Settlement)>) -> anyhow::Result<()> {
        if outcomes.iter().all(|(_, s)| *s == Settlement::Ack) {
            let (last, _) = outcomes.last().expect("a batch is never empty");
            last.ack(BasicAckOptions { multiple: true }).await?;
            return Ok(());
        }
        for (delivery, settlement) in &outcomes {
            let failed = header_u32(delivery, ATTEMPTS) + 1;
            redirect(
                &self.channel,
                &self.config,
                self.service,
                delivery,
                failed,
                settlement,
            )
            .await?;
            delivery.ack(BasicAckOptions::default()).await?;
        }
        Ok(())
    }

    async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            close(conn, "shutdown").await;
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
    let base = super::event_message();
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
