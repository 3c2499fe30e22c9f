//! Cart service: one cart per customer; checkout emits `CartCheckedOut`,
//! from which the order service creates the order.
//!
//! Owns `cart_items`. Products are checked against the catalog when added;
//! prices shown in a cart are the catalog's current ones, and the order is
//! priced again by the order service at checkout.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use std::sync::Arc;

use agora_catalog::{CatalogClient, PricingError};
use agora_inventory::{StockCheck, StockGate};
use agora_platform::db::Migration;
use agora_platform::events::{CartCheckedOut, Envelope, LineItem};
use agora_platform::service::{Context, Parts, Service};
use agora_platform::validate::{FieldError, Invalid, MAX_QUANTITY};
use agora_platform::{Db, DbError, Tx};
use uuid::Uuid;

use agora_platform::validate::Purchase;
use domain::{AddItem, Cart};

pub use store::MIGRATIONS;

pub const NAME: &str = "cart";

#[derive(Clone)]
pub struct Carts {
    pub db: Db,
    pub catalog: Arc<dyn CatalogClient>,
    /// How long an `Idempotency-Key` on checkout is remembered.
    pub idempotency_ttl: std::time::Duration,
    /// The order service's fast stock check, run at checkout too, so that a
    /// cart asking for more than is in stock is refused with the line named
    /// and kept (none: the saga alone decides).
    pub stock: Option<StockGate>,
}

impl Carts {
    pub fn new(db: Db, catalog: Arc<dyn CatalogClient>) -> Self {
        Carts {
            db,
            catalog,
            idempotency_ttl: agora_platform::idempotency::DEFAULT_TTL,
            stock: None,
        }
    }

    /// `customer`'s cart, priced with the catalog's current prices.
    pub async fn view(&self, customer: String) -> Result<Cart, CartError> {
        let items = store::items(&self.db, &customer).await?;
        let ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
        let products = self
            .catalog
            .products(&ids)
            .await
            .map_err(PricingError::Unavailable)?;
        Ok(domain::view(customer, &items, &products))
    }

    /// Adds `item`, keeping the cart one that can be checked out: the
    /// product must be known, priced in the cart's currency, and fit an
    /// order's line count and a line's quantity.
    pub async fn add(&self, customer: String, item: AddItem) -> Result<Cart, CartError> {
        let mut lines = store::items(&self.db, &customer).await?;
        match lines.iter_mut().find(|l| l.product_id == item.product_id) {
            Some(line) => line.quantity = line.quantity.saturating_add(item.quantity),
            None => lines.push(LineItem {
                product_id: item.product_id,
                quantity: item.quantity,
            }),
        }
        match agora_catalog::price(self.catalog.as_ref(), &lines).await {
            Ok(_) => {}
            Err(PricingError::Refused(errors)) => {
                // A product the catalog does not know is the request's
                // (422); the rest is the cart's state with it (409): a
                // 101st line, another currency than the cart's, a total
                // too large.
                let (unknown, in_the_way): (Vec<_>, Vec<_>) = errors
                    .into_iter()
                    .map(|e| {
                        FieldError::new(added_field(&e.field, &lines, item.product_id), e.message)
                    })
                    .partition(|e| e.field == "product_id");
                return Err(if unknown.is_empty() {
                    CartError::Conflict(in_the_way)
                } else {
                    CartError::Invalid(Invalid(unknown))
                });
            }
            Err(unavailable) => return Err(unavailable.into()),
        }
        let mut tx = self.db.begin().await?;
        let quantity = store::add(&mut tx, &customer, item.product_id, item.quantity).await?;
        if quantity > MAX_QUANTITY {
            // Dropping `tx` rolls the addition back. The quantity asked for
            // is valid; with the line's it is more than a line may hold.
            return Err(CartError::Conflict(vec![FieldError::new(
                "quantity",
                format!("the cart may hold at most {MAX_QUANTITY} of one product"),
            )]));
        }
        tx.commit().await?;
        self.view(customer).await
    }

    /// Takes `product_id` out of the cart.
    /// Sets how many of a product the cart holds (a line it has).
    pub async fn set(
        &self,
        customer: String,
        product_id: Uuid,
        quantity: u32,
    ) -> Result<Cart, CartError> {
        let mut tx = self.db.begin().await?;
        if !store::set(&mut tx, &customer, product_id, quantity).await? {
            return Err(CartError::NotInCart(product_id));
        }
        tx.commit().await?;
        self.view(customer).await
    }

    pub async fn remove(&self, customer: String, product_id: Uuid) -> Result<Cart, CartError> {
        let mut tx = self.db.begin().await?;
        if !store::remove(&mut tx, &customer, product_id).await? {
            return Err(CartError::NotInCart(product_id));
        }
        tx.commit().await?;
        self.view(customer).await
    }

    /// The lines of a cart that can be checked out: not empty, and priced
    /// by the order's own rule (so what the order service would refuse is
    /// refused here, with the cart kept).
    pub async fn checkable(&self, customer: &str) -> Result<Vec<LineItem>, CartError> {
        let items = store::items(&self.db, customer).await?;
        if items.is_empty() {
            return Err(CartError::Conflict(vec![FieldError::new(
                "items",
                "the cart is empty",
            )]));
        }
        match agora_catalog::price(self.catalog.as_ref(), &items).await {
            Ok(_) => {}
            Err(PricingError::Refused(errors)) => return Err(CartError::Conflict(errors)),
            Err(unavailable) => return Err(unavailable.into()),
        }
        if let Some(stock) = &self.stock {
            stock
                .admit(&items)
                .await
                .map_err(|short| CartError::Conflict(short.0))?;
        }
        Ok(items)
    }

    /// Empties the cart and emits `CartCheckedOut` inside `tx`, if the cart
    /// still holds `items`; returns the new order's id.
    pub async fn check_out_in(
        tx: &mut Tx,
        customer: String,
        purchase: Purchase,
        items: Vec<LineItem>,
    ) -> Result<Uuid, CartError> {
        if store::take_all(tx, &customer).await? != items {
            return Err(CartError::Changed);
        }
        let order_id = Uuid::now_v7();
        let event = CartCheckedOut {
            order_id,
            customer_id: customer.clone(),
            email: purchase.email,
            phone: purchase.phone,
            items,
            shipping_address: purchase.shipping_address,
            payment_token: purchase.payment_token,
        };
        tx.publish(&Envelope::root(&event)).await?;
        tracing::info!(order_id = %order_id, customer_id = %customer, "cart checked out");
        Ok(order_id)
    }
}

/// A pricing error about the line being added is about the request's
/// `product_id`; one about the cart as a whole stays `items`.
fn added_field(field: &str, lines: &[LineItem], added: Uuid) -> String {
    let added_line = lines.iter().position(|l| l.product_id == added);
    match added_line {
        Some(i) if field == format!("items[{i}].product_id") => "product_id".into(),
        _ => field.to_owned(),
    }
}

/// Why a cart action was not applied.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("{0}")]
    Invalid(Invalid),
    /// A valid request the cart's lines stand in the way of, each named
    /// (empty, a product that is gone, more than is in stock, a line too
    /// many): a 409.
    #[error("the cart's lines stand in the way ({} problems)", .0.len())]
    Conflict(Vec<FieldError>),
    #[error("product {0} is not in the cart")]
    NotInCart(Uuid),
    #[error("the cart changed during the checkout; try again")]
    Changed,
    #[error("the cart cannot be priced")]
    Pricing(#[from] PricingError),
    #[error(transparent)]
    Storage(#[from] DbError),
}

/// The cart service: a customer's cart, priced by the catalog, checked out
/// into an order.
pub struct CartService;

#[async_trait::async_trait]
impl Service for CartService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/api/v1/carts"]
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

    fn needs(&self) -> &'static [&'static str] {
        &[agora_catalog::NAME, agora_inventory::NAME]
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        let catalog: Arc<dyn CatalogClient> = context.peer()?;
        let stock = match context.settings.stock_check {
            true => Some(StockGate::new(
                context.peer::<Arc<dyn StockCheck>>()?,
                "cart-stock-check",
            )),
            false => None,
        };
        let carts = Carts {
            idempotency_ttl: context.settings.idempotency_ttl,
            stock: stock.clone(),
            ..Carts::new(context.db.clone(), catalog.clone())
        };
        Ok(Parts::new(api::router(carts))
            .with_handler(handlers::Handler)
            .with_breakers(catalog.breaker())
            .with_breakers(stock.map(|s| s.breaker)))
    }
}
