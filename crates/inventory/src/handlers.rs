//! Inventory's reactions: stock for new products, reservations for new
//! orders, release on cancellation, sale on completion.

use std::collections::BTreeSet;

use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{
    Envelope, LineItem, OrderCancelled, OrderCompleted, OrderCreated, ProductCreated,
    StockRejected, StockReleased, StockReserved,
};
use agora_platform::Tx;
use async_trait::async_trait;

use crate::domain::{normalize, Level, Levels};
use crate::store::{self, ReserveOutcome};

agora_platform::incoming! {
    /// What inventory consumes, decoded once per event.
    enum Incoming { ProductCreated, OrderCreated, OrderCompleted, OrderCancelled }
}

/// The routing keys the inventory service's queue is bound to.
pub const ROUTING_KEYS: &[&str] = Incoming::ROUTING_KEYS;

pub struct Handler {
    pub reservation_ttl: std::time::Duration,
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

    /// Locks every stock row the batch may change before changing any (see
    /// [`store::lock_levels`]), moves units in memory event by event, and
    /// writes the changed rows back in one statement.
    async fn handle_all(&self, tx: &mut Tx, events: &[&Envelope]) -> Result<(), HandlerError> {
        // Each event decoded once; one that does not decode fails the batch
        // at its turn in `apply`, as if it were handled alone.
        let decoded: Vec<Result<Incoming, HandlerError>> =
            events.iter().map(|event| Incoming::decode(event)).collect();
        let mut products = BTreeSet::new();
        let mut settled_orders = Vec::new();
        for incoming in decoded.iter().flatten() {
            match incoming {
                Incoming::OrderCreated(e) => {
                    products.extend(e.items.iter().map(|item| item.product_id));
                }
                Incoming::OrderCompleted(OrderCompleted { order_id, .. })
                | Incoming::OrderCancelled(OrderCancelled { order_id, .. }) => {
                    settled_orders.push(*order_id);
                }
                Incoming::ProductCreated(_) => {}
            }
        }
        products.extend(store::reserved_products(tx, &settled_orders).await?);
        let mut levels = store::lock_levels(tx, &products).await?;
        for (event, incoming) in events.iter().zip(decoded) {
            self.apply(tx, &mut levels, event, incoming?).await?;
        }
        store::write_levels(tx, &mut levels).await?;
        Ok(())
    }
}

impl Handler {
    /// One event's effect on `levels` (and the events it emits); `event` is
    /// the envelope `incoming` was decoded from, the cause of what it emits.
    async fn apply(
        &self,
        tx: &mut Tx,
        levels: &mut Levels,
        event: &Envelope,
        incoming: Incoming,
    ) -> Result<(), HandlerError> {
        match incoming {
            Incoming::ProductCreated(e) => {
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
            }
            Incoming::OrderCreated(e) => {
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
            }
            Incoming::OrderCompleted(e) => {
                store::sell_locked(tx, levels, e.order_id).await?;
            }
            Incoming::OrderCancelled(e) => {
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
            }
        }
        Ok(())
    }
}
