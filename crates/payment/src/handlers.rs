//! Payment's reactions: charge on request, refund on cancellation.

use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{Envelope, OrderCancelled, PaymentRequested};
use agora_platform::Tx;
use async_trait::async_trait;

use crate::domain::Gateway;
use crate::Payments;

agora_platform::incoming! {
    /// What the payment service consumes.
    pub enum Incoming { PaymentRequested, OrderCancelled }
}

/// The routing keys the payment service's queue is bound to.
pub const ROUTING_KEYS: &[&str] = Incoming::ROUTING_KEYS;

pub struct Handler {
    pub gateway: Gateway,
}

#[async_trait]
impl EventHandler for Handler {
    fn consumer(&self) -> &'static str {
        crate::NAME
    }

    fn routing_keys(&self) -> &'static [&'static str] {
        ROUTING_KEYS
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        match Incoming::decode(event)? {
            Incoming::PaymentRequested(e) => {
                Payments::charge_in(tx, &self.gateway, e, event).await?
            }
            Incoming::OrderCancelled(e) => Payments::refund_in(tx, e, event).await?,
        }
        Ok(())
    }
}
