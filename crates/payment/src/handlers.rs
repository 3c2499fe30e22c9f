//! Payment's reactions: charge on request, refund on cancellation.

use agora_platform::clock::now_rfc3339;
use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{
    Envelope, Money, OrderCancelled, PaymentFailed, PaymentRefunded, PaymentRequested,
    PaymentSucceeded,
};
use agora_platform::Tx;
use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Decision, Gateway, Payment, PaymentStatus};
use crate::store;

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
                let decision = if agora_platform::chaos::roll(
                    agora_platform::chaos::get().payment_decline_rate,
                ) {
                    Decision::Declined("declined at random (chaos switch)".into())
                } else {
                    self.gateway.charge(&e.payment_token, &e.amount)
                };
                let (status, reason) = match &decision {
                    Decision::Captured => (PaymentStatus::Captured, None),
                    Decision::Declined(reason) => (PaymentStatus::Declined, Some(reason.clone())),
                };
                let payment = new_payment(e.order_id, e.amount.clone(), status, reason);
                if !store::insert(tx, &payment).await? {
                    return Ok(()); // charged, declined or voided already: never twice
                }
                match decision {
                    Decision::Captured => {
                        tracing::info!(order_id = %e.order_id, amount = e.amount.amount, "payment captured");
                        let succeeded = PaymentSucceeded {
                            order_id: e.order_id,
                            payment_id: payment.id,
                            amount: e.amount,
                        };
                        tx.publish(&Envelope::caused_by(&succeeded, event)).await?;
                    }
                    Decision::Declined(reason) => {
                        tracing::info!(order_id = %e.order_id, %reason, "payment declined");
                        let failed = PaymentFailed {
                            order_id: e.order_id,
                            reason,
                        };
                        tx.publish(&Envelope::caused_by(&failed, event)).await?;
                    }
                }
            }
            Incoming::OrderCancelled(e) => match store::find_by_order(tx, e.order_id).await? {
                Some(payment) if payment.status == PaymentStatus::Captured => {
                    store::set_status(tx, payment.id, PaymentStatus::Refunded).await?;
                    tracing::info!(order_id = %e.order_id, amount = payment.amount.amount, "payment refunded");
                    let refunded = PaymentRefunded {
                        order_id: e.order_id,
                        payment_id: payment.id,
                        amount: payment.amount,
                    };
                    tx.publish(&Envelope::caused_by(&refunded, event)).await?;
                }
                Some(_) => {}
                None => {
                    let zero = Money {
                        amount: 0,
                        currency: "XXX".into(),
                    };
                    let void = new_payment(e.order_id, zero, PaymentStatus::Voided, Some(e.reason));
                    store::insert(tx, &void).await?;
                }
            },
        }
        Ok(())
    }
}

fn new_payment(
    order_id: Uuid,
    amount: Money,
    status: PaymentStatus,
    reason: Option<String>,
) -> Payment {
    let now = now_rfc3339();
    Payment {
        id: Uuid::now_v7(),
        order_id,
        amount,
        status,
        reason,
        created_at: now.clone(),
        updated_at: now,
    }
}
