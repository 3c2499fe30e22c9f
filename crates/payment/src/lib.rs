//! Payment service: payments and refunds through a simulated gateway.
//!
//! Owns `payments`. The gateway is deterministic so that tests can drive it:
//! token `tok_decline` is declined, amounts above a configurable limit are
//! declined, anything else is captured. At most one payment exists per
//! order, so a repeated request can never charge twice.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use agora_platform::clock::now_rfc3339;
use agora_platform::db::Migration;
use agora_platform::events::{
    Envelope, OrderCancelled, PaymentFailed, PaymentRefunded, PaymentRequested, PaymentSucceeded,
};
use agora_platform::service::{Context, Parts, Service};
use agora_platform::{Db, DbError, Tx};
use uuid::Uuid;

use domain::{Decision, Payment, PaymentStatus, Record, Void};

pub use domain::Gateway;
pub use store::MIGRATIONS;

pub const NAME: &str = "payment";

#[derive(Clone)]
pub struct Payments {
    pub db: Db,
    pub gateway: Gateway,
}

impl Payments {
    pub fn new(db: Db, gateway: Gateway) -> Self {
        Payments { db, gateway }
    }

    /// Charges for a requested payment inside `tx`, once per order, and
    /// announces whether it succeeded.
    pub async fn charge_in(
        tx: &mut Tx,
        gateway: &Gateway,
        e: PaymentRequested,
        cause: &Envelope,
    ) -> Result<(), DbError> {
        let decision =
            if agora_platform::chaos::roll(agora_platform::chaos::get().payment_decline_rate) {
                Decision::Declined("declined at random (chaos switch)".into())
            } else {
                gateway.charge(&e.payment_token, &e.amount)
            };
        let (status, reason) = match &decision {
            Decision::Captured => (PaymentStatus::Captured, None),
            Decision::Declined(reason) => (PaymentStatus::Declined, Some(reason.clone())),
        };
        let payment = new_payment(&e, status, reason);
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
                tx.publish(&Envelope::caused_by(&succeeded, cause)).await?;
            }
            Decision::Declined(reason) => {
                tracing::info!(order_id = %e.order_id, %reason, "payment declined");
                let failed = PaymentFailed {
                    order_id: e.order_id,
                    reason,
                };
                tx.publish(&Envelope::caused_by(&failed, cause)).await?;
            }
        }

        Ok(())
    }

    /// Refunds a captured payment of a cancelled order inside `tx`; an
    /// order cancelled before its payment is voided, so a late request
    /// never charges.
    ///
    /// A charge committed by another transaction between the look and the
    /// void (PostgreSQL, two processes) makes the void lose on the order's
    /// unique key; the payment is then looked at again, and refunded like
    /// any other, so a cancelled order never keeps a charge.
    pub async fn refund_in(
        tx: &mut Tx,
        e: OrderCancelled,
        cause: &Envelope,
    ) -> Result<(), DbError> {
        for _ in 0..2 {
            match store::find_by_order(tx, e.order_id).await? {
                Some(Record::Payment(payment)) if payment.status == PaymentStatus::Captured => {
                    store::set_status(tx, payment.id, PaymentStatus::Refunded).await?;
                    tracing::info!(order_id = %e.order_id, amount = payment.amount.amount, "payment refunded");
                    let refunded = PaymentRefunded {
                        order_id: e.order_id,
                        payment_id: payment.id,
                        amount: payment.amount,
                    };
                    tx.publish(&Envelope::caused_by(&refunded, cause)).await?;
                    return Ok(());
                }
                Some(_) => return Ok(()),
                None => {
                    let void = Void {
                        order_id: e.order_id,
                        reason: e.reason.clone(),
                        at: now_rfc3339(),
                    };
                    if store::insert_void(tx, &void).await? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

fn new_payment(e: &PaymentRequested, status: PaymentStatus, reason: Option<String>) -> Payment {
    let now = now_rfc3339();
    Payment {
        id: Uuid::now_v7(),
        order_id: e.order_id,
        customer_id: Some(e.customer_id.clone()),
        amount: e.amount.clone(),
        status,
        reason,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The payment service: charges for reserved orders, refunds for
/// compensated ones.
pub struct PaymentService;

#[async_trait::async_trait]
impl Service for PaymentService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/api/v1/payments"]
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <api::ApiDoc as utoipa::OpenApi>::openapi()
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    fn consumes(&self) -> &'static [&'static str] {
        handlers::ROUTING_KEYS
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        let gateway = Gateway {
            decline_above: context.settings.payment_decline_above,
        };
        Ok(Parts::new(api::router(Payments::new(
            context.db.clone(),
            gateway.clone(),
        )))
        .with_handler(handlers::Handler { gateway }))
    }
}
