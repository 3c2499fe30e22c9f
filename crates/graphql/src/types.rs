//! What GraphQL shows: the REST answers' own shapes, read from their JSON
//! (snake_case there, camelCase here), and the inputs of the mutations,
//! written back as the REST bodies they are.

use async_graphql::{ComplexObject, Enum, InputObject, SimpleObject, ID};
use serde::{Deserialize, Serialize};

// One type shown (`Money`) and taken (`MoneyInput`).
/// Money in integer minor units and an ISO 4217 currency.
#[derive(Debug, Clone, Serialize, Deserialize, SimpleObject, InputObject)]
#[graphql(input_name = "MoneyInput")]
pub struct Money {
    /// Integer minor units (cents).
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[graphql(complex)]
pub struct Product {
    pub id: ID,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[graphql(complex)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub limit: i64,
    pub offset: i64,
    /// The cursor of the next page (`after`), when this one is full.
    pub next: Option<ID>,
}

#[ComplexObject]
impl ProductPage {
    async fn count(&self) -> usize {
        self.items.len()
    }
}

/// One product's stock: `initial + adjusted = available + reserved + sold`.
#[derive(Debug, Clone, PartialEq, Deserialize, SimpleObject)]
pub struct Stock {
    pub product_id: ID,
    pub sku: String,
    /// Units that may be reserved now.
    pub available: i64,
    /// Units held for orders in progress.
    pub reserved: i64,
    /// Units of completed orders.
    pub sold: i64,
    pub initial: i64,
    pub adjusted: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Reserved,
    Paid,
    Completed,
    Compensating,
    RequiresAttention,
    Cancelled,
    Rejected,
}

impl OrderStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Completed | OrderStatus::Cancelled | OrderStatus::Rejected
        )
    }
}

// One type shown (`Address`) and taken (`AddressInput`).
/// A postal address.
#[derive(Debug, Clone, Serialize, Deserialize, SimpleObject, InputObject)]
#[graphql(input_name = "AddressInput")]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct OrderItem {
    pub product_id: ID,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    /// Minor units, in the order's currency.
    pub unit_price: i64,
}

/// One state change (or note) in an order's life.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct TimelineEntry {
    pub at: String,
    /// The status before; `null` for the order's creation.
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    /// The event type or API call that caused it.
    pub cause: String,
    pub event_id: Option<ID>,
    pub note: Option<String>,
    /// Who asked for it, for an API call.
    pub actor: Option<String>,
}

impl TimelineEntry {
    /// A change of state, not a note.
    pub fn is_change(&self) -> bool {
        self.from != Some(self.to)
    }
}

/// An order with its timeline; its payment, shipment and messages are
/// read only when asked for.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[graphql(complex)]
pub struct Order {
    pub id: ID,
    pub customer_id: String,
    pub email: String,
    pub phone: Option<String>,
    pub status: OrderStatus,
    /// Why it was cancelled or rejected, or why it needs attention.
    pub reason: Option<String>,
    /// Compensations not yet confirmed.
    #[serde(default)]
    pub awaiting: Vec<String>,
    pub items: Vec<OrderItem>,
    pub total: Money,
    pub shipping_address: Address,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
}

/// A line of a list of orders.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct OrderSummary {
    pub id: ID,
    pub customer_id: String,
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub total: Money,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct OrderPage {
    pub items: Vec<OrderSummary>,
    pub limit: i64,
    pub offset: i64,
    pub next: Option<ID>,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct Payment {
    pub id: ID,
    pub order_id: ID,
    pub amount: Money,
    /// CAPTURED, DECLINED or REFUNDED.
    pub status: String,
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct Shipment {
    pub id: ID,
    pub order_id: ID,
    /// CREATED or CANCELLED.
    pub status: String,
    pub carrier: String,
    pub tracking_number: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct Notification {
    pub id: ID,
    pub order_id: ID,
    /// EMAIL or SMS.
    pub channel: String,
    pub recipient: String,
    /// ORDER_CREATED, ORDER_CONFIRMED, ORDER_SHIPPED or ORDER_CANCELLED.
    pub kind: String,
    pub message: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct CartLine {
    pub product_id: ID,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    /// `unitPrice × quantity`; `null` only if it would not fit 64 bits.
    pub line_total: Option<i64>,
}

/// What keeps a cart from being checked out, named as the checkout's
/// refusal would name it.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct Cart {
    pub customer_id: String,
    pub items: Vec<CartLine>,
    pub total: Option<Money>,
    #[serde(default)]
    pub problems: Vec<FieldProblem>,
}

#[derive(Debug, Clone, Deserialize, SimpleObject)]
pub struct CheckedOut {
    pub order_id: ID,
}

#[derive(Debug, Clone, Serialize, InputObject)]
pub struct ItemInput {
    pub product_id: ID,
    pub quantity: i32,
}

#[derive(Debug, Clone, Serialize, InputObject)]
pub struct PlaceOrderInput {
    pub email: String,
    pub phone: Option<String>,
    pub items: Vec<ItemInput>,
    pub shipping_address: Address,
    /// `tok_visa` pays; `tok_decline` is declined.
    pub payment_token: String,
    /// The signed-in customer's own id, if given.
    pub customer_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, InputObject)]
pub struct CheckoutInput {
    pub email: String,
    pub phone: Option<String>,
    pub shipping_address: Address,
    pub payment_token: String,
}

#[derive(Debug, Clone, Serialize, InputObject)]
pub struct NewProductInput {
    pub name: String,
    pub sku: String,
    pub description: Option<String>,
    pub price: Money,
    pub initial_stock: i64,
}

/// One state change of an order, as `orderStatus` pushes it.
#[derive(Debug, Clone, SimpleObject)]
pub struct OrderStatusChange {
    pub order_id: ID,
    pub from: Option<OrderStatus>,
    pub status: OrderStatus,
    pub at: String,
    pub cause: String,
    /// The order's reason at the time it was read.
    pub reason: Option<String>,
    /// The last change: the order is final.
    pub r#final: bool,
}
