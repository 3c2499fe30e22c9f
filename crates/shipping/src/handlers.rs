//! Shipping's reactions: create a shipment on request, cancel it with its order.

use agora_platform::clock::now_rfc3339;
use agora_platform::consumer::{EventHandler, HandlerError};
use agora_platform::events::{Envelope, OrderCancelled, ShippingCreated, ShippingRequested};
use agora_platform::Tx;
use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{carrier_for, tracking_number, Shipment, ShipmentStatus};
use crate::store;

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
            Incoming::ShippingRequested(e) => {
                let id = Uuid::now_v7();
                let shipment = Shipment {
                    id,
                    order_id: e.order_id,
                    status: ShipmentStatus::Created,
                    carrier: carrier_for(&e.shipping_address.country).into(),
                    tracking_number: tracking_number(id),
                    address: Some(e.shipping_address),
                    items: e.items,
                    created_at: now_rfc3339(),
                };
                if !store::insert(tx, &shipment).await? {
                    return Ok(()); // shipped already, or cancelled first
                }
                tracing::info!(order_id = %e.order_id, tracking = %shipment.tracking_number, "shipment created");
                let created = ShippingCreated {
                    order_id: e.order_id,
                    shipment_id: id,
                    carrier: shipment.carrier,
                    tracking_number: shipment.tracking_number,
                };
                tx.publish(&Envelope::caused_by(&created, event)).await?;
            }
            Incoming::OrderCancelled(e) => match store::find_by_order(tx, e.order_id).await? {
                Some(s) if s.status == ShipmentStatus::Created => {
                    store::set_status(tx, s.id, ShipmentStatus::Cancelled).await?;
                }
                Some(_) => {}
                None => {
                    let id = Uuid::now_v7();
                    let tombstone = Shipment {
                        id,
                        order_id: e.order_id,
                        status: ShipmentStatus::Voided,
                        carrier: String::new(),
                        tracking_number: String::new(),
                        address: None,
                        items: Vec::new(),
                        created_at: now_rfc3339(),
                    };
                    store::insert(tx, &tombstone).await?;
                }
            },
        }
        Ok(())
    }
}
