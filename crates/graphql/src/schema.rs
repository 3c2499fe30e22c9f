//! The schema: every resolver is one or more calls to the public API as the
//! caller ([`Caller`]), so GraphQL validates, authorises, keeps idempotency
//! and refuses exactly as REST does — there is no second implementation of
//! any use case here, only the mapping of fields to requests.

use std::time::Duration;

use agora_platform::client::{urlencode, Caller};
use async_graphql::futures_util::Stream;
use async_graphql::{ComplexObject, Context, Object, Result, Schema, Subscription, ID};
use serde::Serialize;
use serde_json::json;

use crate::loaders::Stocks;
use crate::refusal::{read, read_opt};
use crate::types::*;

pub type AgoraSchema = Schema<Query, Mutation, Subscription>;

/// The standard introspection query (graphql-js's, which GraphiQL and
/// client generators send) is 15 deep: `__schema types fields args type`,
/// then nine `ofType`; no query of this schema's own data is deeper than 4.
pub const MAX_DEPTH: usize = 15;
/// A page of 500 products with every field and their stock is about 8,000;
/// a query that asks for more is refused before it runs.
pub const MAX_COMPLEXITY: usize = 10_000;
/// How often a subscription reads again what it follows.
pub const POLL: Duration = Duration::from_millis(250);

pub fn build() -> AgoraSchema {
    Schema::build(Query, Mutation, Subscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    ctx.data_unchecked::<Caller>()
}

/// A query string of the given parameters, without those not given.
fn query_of(params: &impl Serialize) -> String {
    match serde_urlencoded::to_string(params) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    }
}

pub struct Query;

#[derive(Serialize)]
struct ProductParams<'a> {
    q: Option<&'a str>,
    limit: Option<i32>,
    offset: Option<i32>,
    after: Option<&'a str>,
}

#[derive(Serialize)]
struct OrderParams<'a> {
    status: Option<OrderStatus>,
    customer_id: Option<&'a str>,
    since: Option<&'a str>,
    until: Option<&'a str>,
    limit: Option<i32>,
    offset: Option<i32>,
    after: Option<&'a str>,
}

#[Object]
impl Query {
    /// The catalog, in creation order: `search` finds a part of the name or
    /// SKU; `first` is 1 to 500 (50 by default), then `offset` or `after`
    /// (the previous page's `next`).
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        offset: Option<i32>,
        after: Option<ID>,
    ) -> Result<ProductPage> {
        let params = ProductParams {
            q: search.as_deref(),
            limit: first,
            offset,
            after: after.as_ref().map(|a| a.as_str()),
        };
        let path = format!("/api/v1/products{}", query_of(&params));
        let page: ProductPage = read(caller(ctx).get(&path).await)?;
        let ids = page.items.iter().map(|p| p.id.to_string()).collect();
        crate::loaders::prefetch(ctx, ids).await?;
        Ok(page)
    }

    /// One product, or `null` if the catalog has none of this id.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let path = format!("/api/v1/products/{}", urlencode(&id));
        read_opt(caller(ctx).get(&path).await)
    }

    /// Orders, newest first: the caller's own; every customer's for
    /// operators (`customerId` filters). `since`/`until` are RFC 3339.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        status: Option<OrderStatus>,
        customer_id: Option<String>,
        since: Option<String>,
        until: Option<String>,
        first: Option<i32>,
        offset: Option<i32>,
        after: Option<ID>,
    ) -> Result<OrderPage> {
        let params = OrderParams {
            status,
            customer_id: customer_id.as_deref(),
            since: since.as_deref(),
            until: until.as_deref(),
            limit: first,
            offset,
            after: after.as_ref().map(|a| a.as_str()),
        };
        let path = format!("/api/v1/orders{}", query_of(&params));
        read(caller(ctx).get(&path).await)
    }

    /// One order with its timeline, or `null` if there is none the caller
    /// may see (another customer's order is not found, as in REST).
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        read_opt(caller(ctx).get(&order_path(&id)).await)
    }

    /// The signed-in customer's cart, priced with current prices.
    async fn cart(&self, ctx: &Context<'_>) -> Result<Cart> {
        read(caller(ctx).get("/api/v1/carts/me").await)
    }
}

fn order_path(id: &str) -> String {
    format!("/api/v1/orders/{}", urlencode(id))
}

#[ComplexObject]
impl Product {
    /// Live stock, read for the whole page at once.
    async fn stock(&self, ctx: &Context<'_>) -> Result<Option<Stock>> {
        let loader = ctx.data_unchecked::<Stocks>();
        loader.load_one(self.id.to_string()).await
    }
}

/// The first of a list answer, for the one-per-order records.
async fn first_of<T: serde::de::DeserializeOwned>(
    caller: &Caller,
    path: &str,
) -> Result<Option<T>> {
    let list: Vec<T> = read(caller.get(path).await)?;
    Ok(list.into_iter().next())
}

#[ComplexObject]
impl Order {
    async fn payment(&self, ctx: &Context<'_>) -> Result<Option<Payment>> {
        let path = format!("/api/v1/payments?order_id={}", urlencode(&self.id));
        first_of(caller(ctx), &path).await
    }

    async fn shipment(&self, ctx: &Context<'_>) -> Result<Option<Shipment>> {
        let path = format!("/api/v1/shipments?order_id={}", urlencode(&self.id));
        first_of(caller(ctx), &path).await
    }

    /// The messages sent about the order.
    async fn notifications(&self, ctx: &Context<'_>) -> Result<Vec<Notification>> {
        let path = format!("/api/v1/notifications?order_id={}", urlencode(&self.id));
        read(caller(ctx).get(&path).await)
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Places an order for the signed-in customer (as `POST /api/v1/orders`).
    /// The same `idempotencyKey` with the same input answers the first
    /// order again; with another input it is refused.
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: PlaceOrderInput,
        idempotency_key: Option<String>,
    ) -> Result<Order> {
        let body = serde_json::to_value(&input)?;
        let answer = caller(ctx)
            .post_once("/api/v1/orders", &body, idempotency_key.as_deref())
            .await;
        read(answer)
    }

    /// Cancels an order, until it ships.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Order> {
        let path = format!("{}/cancel", order_path(&id));
        let body = json!({ "reason": reason });
        read(
            caller(ctx)
                .post_once(&path, &body, idempotency_key.as_deref())
                .await,
        )
    }

    /// Adds units of a product to the signed-in customer's cart.
    async fn add_to_cart(&self, ctx: &Context<'_>, product_id: ID, quantity: i32) -> Result<Cart> {
        let body = json!({ "product_id": product_id.as_str(), "quantity": quantity });
        read(caller(ctx).post("/api/v1/carts/me/items", &body).await)
    }

    /// Removes a product's line from the cart.
    async fn remove_from_cart(&self, ctx: &Context<'_>, product_id: ID) -> Result<Cart> {
        let path = format!("/api/v1/carts/me/items/{}", urlencode(&product_id));
        read(caller(ctx).delete(&path).await)
    }

    /// Turns the cart into an order; its progress is `order(id)` or the
    /// `orderStatus` subscription.
    async fn checkout(
        &self,
        ctx: &Context<'_>,
        input: CheckoutInput,
        idempotency_key: Option<String>,
    ) -> Result<CheckedOut> {
        let body = serde_json::to_value(&input)?;
        let answer = caller(ctx)
            .post_once(
                "/api/v1/carts/me/checkout",
                &body,
                idempotency_key.as_deref(),
            )
            .await;
        read(answer)
    }

    /// Admin: a new product with its opening stock.
    async fn create_product(&self, ctx: &Context<'_>, input: NewProductInput) -> Result<Product> {
        let body = serde_json::to_value(&input)?;
        read(caller(ctx).post("/api/v1/products", &body).await)
    }

    /// Admin: adds (or, negative, removes) available units, with a reason.
    async fn adjust_stock(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        delta: i64,
        reason: String,
    ) -> Result<Stock> {
        let path = format!("/api/v1/inventory/{}/adjust", urlencode(&product_id));
        let body = json!({ "delta": delta, "reason": reason });
        read(caller(ctx).post(&path, &body).await)
    }
}

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Each state change of an order, from its creation, until it is final
    /// (then the stream ends). Refused as `order(id)` would be.
    async fn order_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Result<OrderStatusChange>>> {
        let caller = caller(ctx).clone();
        let path = order_path(&id);
        let first: Order = read(caller.get(&path).await)?;
        Ok(crate::follow::order_changes(caller, path, first))
    }

    /// A product's stock now, then each time it changes.
    async fn stock_level(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
    ) -> Result<impl Stream<Item = Result<Stock>>> {
        let caller = caller(ctx).clone();
        let path = format!("/api/v1/inventory/{}", urlencode(&product_id));
        let first: Stock = read(caller.get(&path).await)?;
        Ok(crate::follow::stock_changes(caller, path, first))
    }
}
