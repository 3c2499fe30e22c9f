//! The dead-letter queues on RabbitMQ, listed, replayed and purged by
//! taking every message and putting back what was not chosen; and replays
//! of the event log straight into one consumer's queue.

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, ConfirmSelectOptions};
use lapin::types::AMQPValue;

use super::consumer::{header, header_u32, ATTEMPTS};
use super::publisher::{publish_confirmed, publish_one, Route};
use super::{close, connect, AmqpConfig};
use crate::outbox::OutboxRecord;

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
                        let properties =
                            super::event_message().with_message_id(letter.event_id.clone().into());
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
