//! Inventory's reactions: stock for new products, reservations for new
//! orders, release on cancellation, sale on completion.

use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{
    DomainEvent, Envelope, LineItem, OrderCancelled, OrderCompleted, OrderCreated, ProductCreated,
    StockRejected, StockReleased, StockReserved,
};
use agora_platform::Tx;
use async_trait::async_trait;

use crate::domain::normalize;
use crate::store::{self, ReserveOutcome};

pub struct Handler {
    pub reservation_ttl: std::time::Duration,
}

#[async_trait]
impl EventHandler for Handler {
    fn consumer(&self) -> &'static str {
        crate::NAME
    }

    fn routing_keys(&self) -> &'static [&'static str] {
        &[
            ProductCreated::ROUTING_KEY,
            OrderCreated::ROUTING_KEY,
            OrderCompleted::ROUTING_KEY,
            OrderCancelled::ROUTING_KEY,
        ]
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        if event.is::<ProductCreated>() {
            let e: ProductCreated = event.decode()?;
            store::create_stock(tx, e.product_id, &e.sku, e.initial_stock).await?;
        } else if event.is::<OrderCreated>() {
            let e: OrderCreated = event.decode()?;
            let items = normalize(e.items.iter().map(|i| LineItem {
                product_id: i.product_id,
                quantity: i.quantity,
            }));
            let expires_at =
                agora_platform::clock::now_millis() + self.reservation_ttl.as_millis() as i64;
            match store::reserve(tx, e.order_id, &items, expires_at).await? {
                ReserveOutcome::Reserved(items) => {
                    tracing::info!(order_id = %e.order_id, "stock reserved");
                    tx.publish(&Envelope::caused_by(
                        &StockReserved {
                            order_id: e.order_id,
                            items,
                        },
                        event,
                    ))
                    .await?;
                }
                ReserveOutcome::Rejected(shortages) => {
                    tracing::info!(order_id = %e.order_id, "stock rejected");
                    let reason = format!("insufficient stock for {} item(s)", shortages.len());
                    tx.publish(&Envelope::caused_by(
                        &StockRejected {
                            order_id: e.order_id,
                            reason,
                            shortages,
                        },
                        event,
                    ))
                    .await?;
                }
                ReserveOutcome::AlreadyDecided => {}
            }
        } else if event.is::<OrderCompleted>() {
            let e: OrderCompleted = event.decode()?;
            store::sell(tx, e.order_id).await?;
        } else if event.is::<OrderCancelled>() {
            let e: OrderCancelled = event.decode()?;
            if let Some(items) = store::release(tx, e.order_id).await? {
                tracing::info!(order_id = %e.order_id, "stock released");
                tx.publish(&Envelope::caused_by(
                    &StockReleased {
                        order_id: e.order_id,
                        items,
                    },
                    event,
                ))
                .await?;
            }
        } else {
            return Err(HandlerError::permanent(format!(
                "inventory does not handle {}",
                event.event_type
            )));
        }
        Ok(())
    }
}
