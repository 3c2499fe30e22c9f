//! Shipping service: shipments.
//!
//! Owns `shipments`, at most one per order. Creates a shipment when the
//! order service asks, and cancels it (or records a void in its place) when
//! the order is cancelled first.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use agora_platform::clock::now_rfc3339;
use agora_platform::db::Migration;
use agora_platform::events::{Envelope, OrderCancelled, ShippingCreated, ShippingRequested};
use agora_platform::service::{Context, Parts, Service};
use agora_platform::{Db, DbError, Tx};
use uuid::Uuid;

use domain::{carrier_for, tracking_number, Record, Shipment, ShipmentStatus, Void};

pub use store::MIGRATIONS;

pub const NAME: &str = "shipping";

#[derive(Clone)]
pub struct Shipping {
    pub db: Db,
}

impl Shipping {
    pub fn new(db: Db) -> Self {
        Shipping { db }
    }

    /// Creates the shipment a paid order asks for inside `tx`, once per
    /// order (never after its cancellation), and announces it.
    pub async fn ship_in(
        tx: &mut Tx,
        e: ShippingRequested,
        cause: &Envelope,
    ) -> Result<(), DbError> {
        let id = Uuid::now_v7();
        let shipment = Shipment {
            id,
            order_id: e.order_id,
            customer_id: e.customer_id,
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
        tx.publish(&Envelope::caused_by(&created, cause)).await?;

        Ok(())
    }

    /// Cancels a cancelled order's shipment inside `tx`; an order cancelled
    /// before it was shipped leaves a voided record, so a late request
    /// never ships.
    ///
    /// A shipment committed by another transaction between the look and the
    /// void (PostgreSQL, two processes) makes the void lose on the order's
    /// unique key; it is then looked at again, and cancelled like any other.
    pub async fn cancel_in(tx: &mut Tx, e: OrderCancelled) -> Result<(), DbError> {
        for _ in 0..2 {
            match store::find_by_order(tx, e.order_id).await? {
                Some(Record::Shipment(s)) if s.status == ShipmentStatus::Created => {
                    store::set_status(tx, s.id, ShipmentStatus::Cancelled).await?;
                    return Ok(());
                }
                Some(_) => return Ok(()),
                None => {
                    let void = Void {
                        order_id: e.order_id,
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

/// The shipping service: a shipment with its tracking number for each paid
/// order.
pub struct ShippingService;

#[async_trait::async_trait]
impl Service for ShippingService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/api/v1/shipments"]
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
        Ok(Parts::new(api::router(Shipping::new(context.db.clone())))
            .with_handler(handlers::Handler))
    }
}
