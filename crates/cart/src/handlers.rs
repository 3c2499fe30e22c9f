//! The cart's reactions: a checked-out cart that the order service could
//! not turn into an order gets its lines back.

use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{CheckoutRejected, Envelope};
use agora_platform::validate::MAX_QUANTITY;
use agora_platform::Tx;
use async_trait::async_trait;

use crate::store;

agora_platform::incoming! {
    /// What the cart service consumes.
    pub enum Incoming { CheckoutRejected }
}

/// The routing keys the cart service's queue is bound to.
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

    /// Puts the lines back, on top of what the customer added since (at
    /// most the most a cart holds of one product).
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let Incoming::CheckoutRejected(e) = Incoming::decode(event)?;
        for line in &e.items {
            store::add_at_most(
                tx,
                &e.customer_id,
                line.product_id,
                line.quantity,
                MAX_QUANTITY,
            )
            .await?;
        }
        tracing::info!(order_id = %e.order_id, customer_id = %e.customer_id, lines = e.items.len(), "cart restored after a rejected checkout");
        Ok(())
    }
}
