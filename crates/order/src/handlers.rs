//! The order service's reactions: create orders from checked-out carts and
//! move each order along the saga as the other services answer.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use agora_catalog::PricingError;
use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{
    CartCheckedOut, DomainEvent, Envelope, PaymentFailed, PaymentRefunded, PaymentSucceeded,
    ShippingCreated, StockRejected, StockReleased, StockReserved,
};
use agora_platform::Tx;
use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Input, PlaceOrder};
use crate::{store, Orders, Step};

/// The routing keys the order service's queue is bound to: what it consumes.
pub const ROUTING_KEYS: &[&str] = &[
    CartCheckedOut::ROUTING_KEY,
    StockReserved::ROUTING_KEY,
    StockRejected::ROUTING_KEY,
    PaymentSucceeded::ROUTING_KEY,
    PaymentFailed::ROUTING_KEY,
    ShippingCreated::ROUTING_KEY,
    StockReleased::ROUTING_KEY,
    PaymentRefunded::ROUTING_KEY,
];

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
        let mut ids: Vec<Uuid> = events
            .iter()
            .filter_map(|e| saga_input(e).ok().map(|(id, _)| id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut loaded = store::find_many_in(tx, &ids).await?;
        for event in events {
            if event.is::<CartCheckedOut>() {
                self.checkout(tx, event).await?;
            } else {
                self.step(tx, event, &mut loaded).await?;
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
        loaded: &mut HashMap<Uuid, store::Loaded>,
    ) -> Result<(), HandlerError> {
        let (order_id, input) = saga_input(event)?;
        // Not read with the batch: created inside this transaction, or unknown.
        let found = match loaded.entry(order_id) {
            Entry::Occupied(entry) => Some(entry.into_mut()),
            Entry::Vacant(entry) => store::find_in(tx, order_id).await?.map(|f| entry.insert(f)),
        };
        let step = match found {
            Some(found) => {
                self.orders
                    .advance_loaded(tx, found, input, Some(event))
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

    async fn checkout(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let checkout: CartCheckedOut = event.decode()?;
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
            Err(PricingError::Unavailable(e)) => return Err(HandlerError::transient(e)),
        }
        Ok(())
    }
}

/// The order and state-machine input an event stands for.
fn saga_input(event: &Envelope) -> Result<(Uuid, Input), HandlerError> {
    Ok(if event.is::<StockReserved>() {
        let e: StockReserved = event.decode()?;
        (e.order_id, Input::StockReserved)
    } else if event.is::<StockRejected>() {
        let e: StockRejected = event.decode()?;
        (e.order_id, Input::StockRejected { reason: e.reason })
    } else if event.is::<PaymentSucceeded>() {
        let e: PaymentSucceeded = event.decode()?;
        (e.order_id, Input::PaymentSucceeded)
    } else if event.is::<PaymentFailed>() {
        let e: PaymentFailed = event.decode()?;
        (e.order_id, Input::PaymentFailed { reason: e.reason })
    } else if event.is::<ShippingCreated>() {
        let e: ShippingCreated = event.decode()?;
        (
            e.order_id,
            Input::ShippingCreated {
                tracking_number: e.tracking_number,
            },
        )
    } else if event.is::<StockReleased>() {
        let e: StockReleased = event.decode()?;
        (e.order_id, Input::StockReleased)
    } else if event.is::<PaymentRefunded>() {
        let e: PaymentRefunded = event.decode()?;
        (e.order_id, Input::PaymentRefunded)
    } else {
        return Err(HandlerError::permanent(format!(
            "order does not handle {}",
            event.event_type
        )));
    })
}
