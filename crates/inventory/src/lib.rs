//! Inventory service: stock levels and reservations.
//!
//! Owns `stock`, `reservations` and `adjustments`. Every unit of a product is
//! in exactly one of available, reserved or sold; reservation is
//! all-or-nothing across an order's items, decided on stock rows the
//! transaction has locked (`store::lock_levels`), and the table refuses a
//! negative bucket, so concurrent orders, or several inventory instances,
//! can never oversell.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::breaker::Breaker;
use agora_platform::db::Migration;
use agora_platform::events::{Envelope, LineItem, StockReleased};
use agora_platform::service::{Context, Parts, Peer, Service, Settings};
use agora_platform::validate::FieldError;
use agora_platform::{Db, DbError, Tx};
use axum::http::Extensions;
use uuid::Uuid;

pub use store::MIGRATIONS;

pub const NAME: &str = "inventory";

#[derive(Clone)]
pub struct Inventory {
    pub db: Db,
    /// How long a reservation is held before it is given back unless the
    /// order completes or cancels first: a safety net for sagas that died,
    /// far longer than the order service's step deadlines.
    pub reservation_ttl: Duration,
}

impl Inventory {
    pub fn new(db: Db, reservation_ttl: Duration) -> Self {
        Inventory {
            db,
            reservation_ttl,
        }
    }

    /// Adjusts a product's available stock (a count, a loss) and records
    /// why; refused when no stock is kept for it or it would go below zero.
    pub async fn adjust(
        &self,
        id: Uuid,
        adjustment: &domain::Adjustment,
    ) -> Result<domain::Stock, InventoryError> {
        let mut tx = self.db.begin().await?;
        match store::adjust(&mut tx, id, adjustment).await? {
            Ok(()) => {}
            Err(store::AdjustError::UnknownProduct) => return Err(InventoryError::NoStock(id)),
            Err(store::AdjustError::BelowZero { available }) => {
                return Err(InventoryError::BelowZero {
                    delta: adjustment.delta,
                    available,
                })
            }
        }
        let stock = store::find(&mut tx, id)
            .await?
            .ok_or(InventoryError::Vanished(id))?;
        tx.commit().await?;
        tracing::info!(product_id = %id, delta = adjustment.delta, reason = %adjustment.reason, "stock adjusted");
        Ok(stock)
    }

    /// Releases reservations past their time to live, announcing each with
    /// `StockReleased` (the order service then cancels a live order).
    pub async fn expire_reservations(&self) -> Result<usize, DbError> {
        let expired = store::expired(&self.db, agora_platform::clock::now_millis(), 100).await?;
        let mut released = 0;
        for order_id in expired {
            let mut tx = self.db.begin().await?;
            if let Some(items) = release(&mut tx, order_id).await? {
                tracing::warn!(order_id = %order_id, "reservation expired; stock released");
                tx.publish(&Envelope::root(&StockReleased { order_id, items }))
                    .await?;
                tx.commit().await?;
                released += 1;
            }
        }
        Ok(released)
    }
}

/// Reserves `items` for an order inside `tx` ([`store::reserve_locked`]
/// on its own): locks the items' stock, reserves, writes.
pub async fn reserve(
    tx: &mut Tx,
    order_id: Uuid,
    items: &[LineItem],
    expires_at: i64,
) -> Result<store::ReserveOutcome, DbError> {
    let products = items.iter().map(|item| item.product_id).collect();
    let mut levels = store::lock_levels(tx, &products).await?;
    let outcome = store::reserve_locked(tx, &mut levels, order_id, items, expires_at).await?;
    store::write_levels(tx, &mut levels).await?;
    Ok(outcome)
}

/// Gives a held reservation back to stock inside `tx`
/// ([`store::release_locked`] on its own): locks the reservation's stock, releases,
/// writes.
pub async fn release(tx: &mut Tx, order_id: Uuid) -> Result<Option<Vec<LineItem>>, DbError> {
    let products = store::reserved_products(tx, &[order_id]).await?;
    let mut levels = store::lock_levels(tx, &products).await?;
    let released = store::release_locked(tx, &mut levels, order_id).await?;
    store::write_levels(tx, &mut levels).await?;
    Ok(released)
}

/// Sells a held reservation inside `tx` ([`store::sell_locked`] on its
/// own): locks the reservation's stock, sells,
/// writes.
pub async fn sell(tx: &mut Tx, order_id: Uuid) -> Result<bool, DbError> {
    let products = store::reserved_products(tx, &[order_id]).await?;
    let mut levels = store::lock_levels(tx, &products).await?;
    let sold = store::sell_locked(tx, &mut levels, order_id).await?;
    store::write_levels(tx, &mut levels).await?;
    Ok(sold)
}

/// Why an inventory action was not applied.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no stock is kept for product {0}")]
    NoStock(Uuid),
    #[error("adjusting by {delta} would take available stock ({available}) below zero")]
    BelowZero { delta: i64, available: i64 },
    #[error("the stock of product {0} vanished after its adjustment")]
    Vanished(Uuid),
    #[error(transparent)]
    Storage(#[from] DbError),
}

/// The reservation expiry, run periodically by the composition.
pub struct ReservationExpiry(pub Inventory);

#[async_trait::async_trait]
impl agora_platform::periodic::Periodic for ReservationExpiry {
    fn name(&self) -> &'static str {
        "inventory-reservation-expiry"
    }

    fn every(&self) -> Duration {
        (self.0.reservation_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    async fn run_once(&self) -> anyhow::Result<usize> {
        Ok(self.0.expire_reservations().await?)
    }
}

/// The lines of an order (or a cart) that ask for more than is in stock,
/// each named (`items[i].quantity`): a request that is valid, refused by
/// the stock's state for now, so a 409.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortage(pub Vec<FieldError>);

impl From<Shortage> for agora_platform::http::ApiError {
    fn from(short: Shortage) -> Self {
        Self::conflicting("not enough in stock", short.0)
    }
}

/// The fast stock check before an order is accepted, by the order service
/// (an order placed) and the cart (a cart checked out), so that both refuse
/// alike: a line asking for more than is available is a [`Shortage`].
/// When inventory fails or is slow, the breaker opens and the order is
/// accepted unchecked: the saga alone decides.
#[derive(Clone)]
pub struct StockGate {
    check: Arc<dyn StockCheck>,
    pub breaker: Arc<Breaker>,
}

impl StockGate {
    /// `name` names the breaker (per service: each has its own).
    pub fn new(check: Arc<dyn StockCheck>, name: &'static str) -> StockGate {
        StockGate {
            check,
            breaker: Arc::new(Breaker::new(
                name,
                5,
                Duration::from_secs(10),
                Duration::from_millis(300),
            )),
        }
    }

    pub async fn admit(&self, items: &[LineItem]) -> Result<(), Shortage> {
        let ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
        match self.breaker.call(|| self.check.available(&ids)).await {
            Ok(available) => {
                let short = domain::shortages(items, &available);
                if short.is_empty() {
                    Ok(())
                } else {
                    Err(Shortage(short))
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, breaker = self.breaker.state(), "stock check skipped; the saga decides");
                Ok(())
            }
        }
    }
}

/// How a service asks for available stock before accepting an order:
/// in-process in the embedded mode, over HTTP in the distributed mode.
#[async_trait::async_trait]
pub trait StockCheck: Send + Sync {
    /// Available units of each product that has stock; unknown ids are absent.
    async fn available(&self, ids: &[uuid::Uuid]) -> Result<HashMap<uuid::Uuid, i64>, String>;
}

#[async_trait::async_trait]
impl StockCheck for Inventory {
    async fn available(&self, ids: &[uuid::Uuid]) -> Result<HashMap<uuid::Uuid, i64>, String> {
        let mut found = HashMap::new();
        for id in ids {
            if let Some(stock) = store::find(&self.db, *id)
                .await
                .map_err(|e| e.to_string())?
            {
                found.insert(*id, stock.available);
            }
        }
        Ok(found)
    }
}

/// [`StockCheck`] over HTTP (`GET /api/v1/inventory?ids=…`).
pub struct HttpStockCheck {
    client: reqwest::Client,
    base_url: String,
}

impl HttpStockCheck {
    pub fn new(base_url: &str) -> Self {
        HttpStockCheck {
            client: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl StockCheck for HttpStockCheck {
    async fn available(&self, ids: &[uuid::Uuid]) -> Result<HashMap<uuid::Uuid, i64>, String> {
        let ids: Vec<String> = ids.iter().map(uuid::Uuid::to_string).collect();
        let url = format!("{}/api/v1/inventory?ids={}", self.base_url, ids.join(","));
        let stock: Vec<domain::Stock> = self
            .client
            .get(url)
            .headers(agora_platform::telemetry::outgoing_headers())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(stock
            .into_iter()
            .map(|s| (s.product_id, s.available))
            .collect())
    }
}

/// The inventory service: stock levels, reservations for orders, and the
/// stock check the order service asks before accepting an order.
pub struct InventoryService;

#[async_trait::async_trait]
impl Service for InventoryService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/api/v1/inventory"]
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

    fn offer(&self, at: Peer<'_>, settings: &Settings, offers: &mut Extensions) {
        let check: Arc<dyn StockCheck> = match at {
            Peer::Local(db) => Arc::new(Inventory::new(db.clone(), settings.reservation_ttl)),
            Peer::Remote(url) => Arc::new(HttpStockCheck::new(url)),
        };
        offers.insert(check);
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        let ttl = context.settings.reservation_ttl;
        let inventory = Inventory::new(context.db.clone(), ttl);
        Ok(Parts::new(api::router(inventory.clone()))
            .with_periodic(ReservationExpiry(inventory))
            .with_handler(handlers::Handler {
                reservation_ttl: ttl,
            }))
    }
}
