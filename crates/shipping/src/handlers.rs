//! Shipping's reactions: create a shipment on request, cancel it with its order.

use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{Envelope, OrderCancelled, ShippingRequested};
use agora_platform::Tx;
use async_trait::async_trait;

use crate::Shipping;

agora_platform::incoming! {
    /// What the shipping service consumes.
    pub enum Incoming { ShippingRequested, OrderCancelled }
}

/// The routing keys the shipping service's queue is bound to.
pub const ROUTING_KEYS: &[&str] = Incoming::ROUTING_KEYS;

pub struct Handler;

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
            Incoming::ShippingRequested(e) => Shipping::ship_in(tx, e, event).await?,
            Incoming::OrderCancelled(e) => Shipping::cancel_in(tx, e).await?,
        }
        Ok(())
    }
}
