//! Inventory's reactions: stock for new products, reservations for new
//! orders, release on cancellation, sale on completion.

use std::collections::BTreeSet;

use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{
    DomainEvent, Envelope, LineItem, OrderCancelled, OrderCompleted, OrderCreated, ProductCreated,
    StockRejected, StockReleased, StockReserved,
};
use agora_platform::Tx;
use async_trait::async_trait;

use crate::domain::{normalize, Level, Levels};
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
        self.handle_all(tx, &[event]).await
    }

    /// Locks every stock row the batch may change before changing any (see
    /// [`store::lock_levels`]), moves units in memory event by event, and
    /// writes the changed rows back in one statement.
    async fn handle_all(&self, tx: &mut Tx, events: &[&Envelope]) -> Result<(), HandlerError> {
        let mut products = BTreeSet::new();
        let mut settled_orders = Vec::new();
        // An event that does not decode is skipped here; `apply` reports it.
        for event in events {
            if event.is::<OrderCreated>() {
                if let Ok(e) = event.decode::<OrderCreated>() {
                    products.extend(e.items.iter().map(|item| item.product_id));
                }
            } else if event.is::<OrderCompleted>() {
                if let Ok(e) = event.decode::<OrderCompleted>() {
                    settled_orders.push(e.order_id);
                }
            } else if let Ok(e) = event.decode::<OrderCancelled>() {
                settled_orders.push(e.order_id);
            }
        }
        products.extend(store::reserved_products(tx, &settled_orders).await?);
        let mut levels = store::lock_levels(tx, &products).await?;
        for event in events {
            self.apply(tx, &mut levels, event).await?;
        }
        store::write_levels(tx, &mut levels).await?;
        Ok(())
    }
}

impl Handler {
    async fn apply(
        &self,
        tx: &mut Tx,
        levels: &mut Levels,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if event.is::<ProductCreated>() {
            let e: ProductCreated = event.decode()?;
            if store::create_stock(tx, e.product_id, &e.sku, e.initial_stock).await? {
                // An order later in this batch may reserve it.
                let available = i64::from(e.initial_stock);
                levels.insert(
                    e.product_id,
                    Level {
                        available,
                        ..Level::default()
                    },
                );
            }
        } else if event.is::<OrderCreated>() {
            let e: OrderCreated = event.decode()?;
            let items = normalize(e.items.iter().map(|i| LineItem {
                product_id: i.product_id,
                quantity: i.quantity,
            }));
            let expires_at =
                agora_platform::clock::now_millis() + self.reservation_ttl.as_millis() as i64;
            match store::reserve_locked(tx, levels, e.order_id, &items, expires_at).await? {
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
            store::sell_locked(tx, levels, e.order_id).await?;
        } else if event.is::<OrderCancelled>() {
            let e: OrderCancelled = event.decode()?;
            if let Some(items) = store::release_locked(tx, levels, e.order_id).await? {
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
