//! Publishing with confirms: the outbox relay's batches, pipelined, and
//! single moves (a retry, a dead letter) that must never be lost.

use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use super::{event_message, header_name, long_string, Broker, HEADER_ATTRIBUTES};
use crate::outbox::OutboxRecord;
use crate::transport::Publisher;

fn event_properties(record: &OutboxRecord) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Ok(envelope) = serde_json::from_str::<crate::events::Envelope>(&record.envelope) {
        for name in HEADER_ATTRIBUTES {
            if let Some(value) = envelope.attribute(name) {
                headers.insert(header_name(name).into(), long_string(value));
            }
        }
    }
    event_message()
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
            mandatory: self.is_consumed(&record.routing_key),
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
pub(super) struct Route {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
}

/// Publishes every record (where `route` says), all in flight at once,
/// then waits for each confirm: pipelined, never one by one. Fails if the
/// broker refused one or returned one that no queue took, so the caller
/// keeps the batch (in its outbox) and tries again.
pub(super) async fn publish_confirmed(
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

/// Publishes one message and waits for the broker's confirm: for moves that
/// are followed by an ack of the original, which must never lose it (so it
/// is `mandatory`: a message no queue takes is an error, not a success).
pub(super) async fn publish_one(
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
