//! Notification's reactions: tell the customer when an order is created,
//! confirmed (paid), shipped or cancelled.

use std::sync::Arc;

use agora_platform::clock::now_rfc3339;
use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{
    Envelope, OrderCancelled, OrderCreated, PaymentSucceeded, ShippingCreated,
};
use agora_platform::memo::Memo;
use agora_platform::Tx;
use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{recipients, Moment, Notification};
use crate::store;

/// An order's email and phone: written once, with `OrderCreated`.
type Contact = (String, Option<String>);

agora_platform::incoming! {
    /// What the notification service consumes.
    pub enum Incoming { OrderCreated, PaymentSucceeded, ShippingCreated, OrderCancelled }
}

/// The routing keys the notification service's queue is bound to.
pub const ROUTING_KEYS: &[&str] = Incoming::ROUTING_KEYS;

pub struct Handler {
    /// Contacts seen by this process, so that the later notifications of an
    /// order need no read (a contact never changes once saved).
    contacts: Arc<Memo<Uuid, Contact>>,
}

/// How many contacts a process remembers before it starts over. An
/// order's notifications all come within seconds of its first, so this
/// only has to cover the orders in flight (a few thousand at this machine's
/// full load); remembering every order's contact instead grew the embedded
/// server's memory by about 200 bytes an order, up to 100,000 orders.
const KNOWN_CONTACTS: usize = 8_192;

impl Default for Handler {
    fn default() -> Self {
        Handler {
            contacts: Arc::new(Memo::new(KNOWN_CONTACTS)),
        }
    }
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
        let (order_id, moment, contact) = match Incoming::decode(event)? {
            Incoming::OrderCreated(e) => {
                store::save_contact(tx, e.order_id, &e.customer_id, &e.email, e.phone.as_deref())
                    .await?;
                (e.order_id, Moment::Created, Some((e.email, e.phone)))
            }
            Incoming::PaymentSucceeded(e) => (e.order_id, Moment::Confirmed, None),
            Incoming::ShippingCreated(e) => {
                let moment = Moment::Shipped {
                    carrier: e.carrier,
                    tracking_number: e.tracking_number,
                };
                (e.order_id, moment, None)
            }
            Incoming::OrderCancelled(e) => (e.order_id, Moment::Cancelled { code: e.code }, None),
        };
        if !moment.is_told() {
            return Ok(());
        }
        // The contact arrives with OrderCreated; an event that overtakes it
        // waits for it through the retry policy.
        let contact = match contact {
            Some(contact) => {
                let (contacts, saved) = (self.contacts.clone(), contact.clone());
                tx.after_commit(move || contacts.remember([(order_id, saved)]));
                Some(contact)
            }
            None => match self.contacts.get(&order_id) {
                Some(known) => Some(known),
                None => store::contact(tx, order_id).await?,
            },
        };
        let Some((email, phone)) = contact else {
            return Err(HandlerError::transient(format!(
                "no contact known yet for order {order_id}"
            )));
        };
        for (channel, recipient) in recipients(&email, phone.as_deref()) {
            let notification = Notification {
                id: Uuid::now_v7(),
                order_id,
                channel,
                recipient,
                kind: moment.kind().into(),
                message: moment.message(order_id),
                created_at: now_rfc3339(),
            };
            store::insert(tx, &notification, event.id);
        }
        Ok(())
    }
}
