//! Cart REST API: `/api/v1/carts/{customer_id}`.

use agora_platform::events::{CartCheckedOut, Envelope, Money};
use agora_platform::http::{parse_id, ApiError, Json};
use agora_platform::idempotency::{self, Answer};
use agora_platform::validate::MAX_QUANTITY;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{customer_id, AddItem, AddItemRequest, Cart, CartLine, CheckoutRequest};
use crate::{store, Carts};

pub fn router(carts: Carts) -> Router {
    Router::new()
        .route("/api/v1/carts/{customer_id}", get(show))
        .route("/api/v1/carts/{customer_id}/items", post(add))
        .route(
            "/api/v1/carts/{customer_id}/items/{product_id}",
            delete(remove),
        )
        .route("/api/v1/carts/{customer_id}/checkout", post(checkout))
        .with_state(carts)
}

/// The cart priced with the catalog's current prices.
async fn priced(carts: &Carts, customer: String) -> Result<Cart, ApiError> {
    let items = store::items(&carts.db, &customer).await?;
    let ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
    let products = carts
        .catalog
        .products(&ids)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let lines: Vec<CartLine> = items
        .iter()
        .filter_map(|item| {
            let p = products.iter().find(|p| p.id == item.product_id)?;
            Some(CartLine {
                product_id: p.id,
                sku: p.sku.clone(),
                name: p.name.clone(),
                quantity: item.quantity,
                unit_price: p.price.amount,
                line_total: p.price.amount * i64::from(item.quantity),
            })
        })
        .collect();
    let total = products.first().map(|p| Money {
        amount: lines.iter().map(|l| l.line_total).sum(),
        currency: p.price.currency.clone(),
    });
    Ok(Cart {
        customer_id: customer,
        items: lines,
        total,
    })
}

async fn show(
    State(carts): State<Carts>,
    Path(customer): Path<String>,
) -> Result<Json<Cart>, ApiError> {
    let customer = customer_id(&customer)?;
    Ok(Json(priced(&carts, customer).await?))
}

async fn add(
    State(carts): State<Carts>,
    Path(customer): Path<String>,
    Json(req): Json<AddItemRequest>,
) -> Result<Json<Cart>, ApiError> {
    let customer = customer_id(&customer)?;
    let item = AddItem::parse(req)?;
    let known = carts
        .catalog
        .products(&[item.product_id])
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if known.is_empty() {
        return Err(ApiError::invalid_field(
            "product_id",
            format!("product {} does not exist", item.product_id),
        ));
    }
    let mut tx = carts.db.begin().await?;
    let quantity = store::add(&mut tx, &customer, item.product_id, item.quantity).await?;
    if quantity > MAX_QUANTITY {
        // Dropping `tx` rolls the addition back.
        return Err(ApiError::invalid_field(
            "quantity",
            format!("the cart may hold at most {MAX_QUANTITY} of one product"),
        ));
    }
    tx.commit().await?;
    Ok(Json(priced(&carts, customer).await?))
}

async fn remove(
    State(carts): State<Carts>,
    Path((customer, product)): Path<(String, String)>,
) -> Result<Json<Cart>, ApiError> {
    let customer = customer_id(&customer)?;
    let product_id = parse_id(&product, "product id")?;
    let mut tx = carts.db.begin().await?;
    if !store::remove(&mut tx, &customer, product_id).await? {
        return Err(ApiError::not_found(format!(
            "product {product_id} is not in the cart"
        )));
    }
    tx.commit().await?;
    Ok(Json(priced(&carts, customer).await?))
}

#[derive(Serialize)]
struct CheckedOut {
    order_id: Uuid,
    status_url: String,
}

/// Empties the cart and emits `CartCheckedOut` in one transaction; the order
/// service creates the order from the event (202: it exists shortly after).
/// With an `Idempotency-Key`, a repeated checkout replays the first answer.
async fn checkout(
    State(carts): State<Carts>,
    Path(customer): Path<String>,
    headers: HeaderMap,
    Json(req): Json<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let customer = customer_id(&customer)?;
    let key = idempotency::key_from(&headers)?;
    let fingerprint = idempotency::fingerprint(&(&customer, &req));
    let req = req.parse()?;
    let scope = format!("POST /carts/{customer}/checkout");
    idempotency::once(
        &carts.db,
        &scope,
        key,
        fingerprint,
        carts.idempotency_ttl,
        move |tx| {
            Box::pin(async move {
                let items = store::take_all(tx, &customer).await?;
                if items.is_empty() {
                    return Err(ApiError::invalid_field("items", "the cart is empty"));
                }
                let order_id = Uuid::now_v7();
                let event = CartCheckedOut {
                    order_id,
                    customer_id: customer.clone(),
                    email: req.email,
                    phone: req.phone,
                    items,
                    shipping_address: req.shipping_address,
                    payment_token: req.payment_token,
                };
                tx.publish(&Envelope::root(&event)).await?;
                tracing::info!(order_id = %order_id, customer_id = %customer, "cart checked out");
                let status_url = format!("/api/v1/orders/{order_id}");
                let body = CheckedOut {
                    order_id,
                    status_url: status_url.clone(),
                };
                Ok(Answer::json(StatusCode::ACCEPTED, Some(status_url), &body))
            })
        },
    )
    .await
}
