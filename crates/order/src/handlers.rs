//! The order service's reactions: create orders from checked-out carts and
//! move each order along the saga as the other services answer.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use agora_catalog::PricingError;
use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{
    CartCheckedOut, Envelope, PaymentFailed, PaymentRefunded, PaymentSucceeded, ShippingCreated,
    StockRejected, StockReleased, StockReserved,
};
use agora_platform::Tx;
use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Input, PlaceOrder};
use crate::{store, Cause, Orders, Step};

agora_platform::incoming! {
    /// What the order service consumes: checkouts, and the other services'
    /// answers to the saga's steps.
    pub enum Incoming {
        CartCheckedOut,
        StockReserved,
        StockRejected,
        PaymentSucceeded,
        PaymentFailed,
        ShippingCreated,
        StockReleased,
        PaymentRefunded,
    }
}

/// The routing keys the order service's queue is bound to.
pub const ROUTING_KEYS: &[&str] = Incoming::ROUTING_KEYS;

pub struct Handler {
    pub orders: Orders,
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
        self.handle_all(tx, &[event]).await
    }

    /// Reads every order the batch's saga events name in one statement,
    /// moves them in memory event by event, and writes them back in one more.
    async fn handle_all(&self, tx: &mut Tx, events: &[&Envelope]) -> Result<(), HandlerError> {
        let decoded = events
            .iter()
            .map(|e| Incoming::decode(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids: Vec<Uuid> = decoded.iter().filter_map(Incoming::order_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut loaded = store::find_many_in(tx, &ids).await?;
        for (incoming, event) in decoded.into_iter().zip(events) {
            match incoming {
                Incoming::CartCheckedOut(checkout) => self.checkout(tx, checkout, event).await?,
                answer => {
                    if let Some((order_id, input)) = saga_input(answer) {
                        self.step(tx, event, order_id, input, &mut loaded).await?;
                    }
                }
            }
        }
        // One write for every order the batch moved.
        match store::save(tx, loaded.values_mut()).await?.first() {
            Some(order_id) => Err(HandlerError::transient(format!(
                "order {order_id} changed concurrently"
            ))),
            None => Ok(()),
        }
    }
}

impl Handler {
    /// Moves the order `event` is about, read already in `loaded`.
    async fn step(
        &self,
        tx: &mut Tx,
        event: &Envelope,
        order_id: Uuid,
        input: Input,
        loaded: &mut HashMap<Uuid, store::Loaded>,
    ) -> Result<(), HandlerError> {
        // Not read with the batch: created inside this transaction, or unknown.
        let found = match loaded.entry(order_id) {
            Entry::Occupied(entry) => Some(entry.into_mut()),
            Entry::Vacant(entry) => store::find_loaded(&mut *tx, order_id)
                .await?
                .map(|f| entry.insert(f)),
        };
        let step = match found {
            Some(found) => {
                self.orders
                    .advance_loaded(tx, found, input, Cause::Event(event))
                    .await?
            }
            None => Step::UnknownOrder,
        };
        match step {
            Step::UnknownOrder => Err(HandlerError::permanent(format!(
                "order {order_id} does not exist"
            ))),
            // Written, and checked for a concurrent change, by `handle_all`.
            Step::Moved(_) | Step::Noted | Step::Ignored | Step::Refused(_) | Step::Conflict => {
                Ok(())
            }
        }
    }

    async fn checkout(
        &self,
        tx: &mut Tx,
        checkout: CartCheckedOut,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let e = checkout.clone();
        let cmd = PlaceOrder {
            customer_id: e.customer_id,
            email: e.email,
            phone: e.phone,
            items: e.items,
            shipping_address: e.shipping_address,
            payment_token: e.payment_token,
        };
        match self.orders.priced(e.order_id, cmd).await {
            Ok(order) => {
                self.orders.create_in(tx, &order, Some(event)).await?;
            }
            Err(PricingError::Refused(errors)) => {
                self.orders
                    .reject_checkout_in(tx, &checkout, &errors, event)
                    .await?;
            }
            Err(PricingError::Unavailable(e)) => return Err(HandlerError::Transient(Box::new(e))),
        }
        Ok(())
    }
}

impl Incoming {
    /// The order a saga answer is about (none for a checkout: its order
    /// does not exist yet).
    fn order_id(&self) -> Option<Uuid> {
        match self {
            Incoming::CartCheckedOut(_) => None,
            Incoming::StockReserved(e) => Some(e.order_id),
            Incoming::StockRejected(e) => Some(e.order_id),
            Incoming::PaymentSucceeded(e) => Some(e.order_id),
            Incoming::PaymentFailed(e) => Some(e.order_id),
            Incoming::ShippingCreated(e) => Some(e.order_id),
            Incoming::StockReleased(e) => Some(e.order_id),
            Incoming::PaymentRefunded(e) => Some(e.order_id),
        }
    }
}

/// The order and state-machine input a saga answer stands for (none for a
/// checkout: it is no step of an existing order).
fn saga_input(incoming: Incoming) -> Option<(Uuid, Input)> {
    Some(match incoming {
        Incoming::CartCheckedOut(_) => return None,
        Incoming::StockReserved(e) => (e.order_id, Input::StockReserved),
        Incoming::StockRejected(e) => (e.order_id, Input::StockRejected { reason: e.reason }),
        Incoming::PaymentSucceeded(e) => (e.order_id, Input::PaymentSucceeded),
        Incoming::PaymentFailed(e) => (e.order_id, Input::PaymentFailed { reason: e.reason }),
        Incoming::ShippingCreated(e) => (
            e.order_id,
            Input::ShippingCreated {
                tracking_number: e.tracking_number,
            },
        ),
        Incoming::StockReleased(e) => (e.order_id, Input::StockReleased),
        Incoming::PaymentRefunded(e) => (e.order_id, Input::PaymentRefunded),
    })
}
