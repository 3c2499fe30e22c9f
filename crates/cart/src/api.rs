//! Cart REST API: `/api/v1/carts/{customer_id}`.

use agora_catalog::PricingError;
use agora_platform::events::{CartCheckedOut, Envelope, LineItem};
use agora_platform::http::{parse_id, ApiError, FieldError, Json};
use agora_platform::idempotency::{self, Answer};
use agora_platform::validate::MAX_QUANTITY;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{self, customer_id, AddItem, AddItemRequest, Cart, CheckoutRequest};
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
        .map_err(PricingError::Unavailable)?;
    Ok(domain::view(customer, &items, &products))
}

async fn show(
    State(carts): State<Carts>,
    Path(customer): Path<String>,
) -> Result<Json<Cart>, ApiError> {
    let customer = customer_id(&customer).map_err(ApiError::bad_request)?;
    Ok(Json(priced(&carts, customer).await?))
}

async fn add(
    State(carts): State<Carts>,
    Path(customer): Path<String>,
    Json(req): Json<AddItemRequest>,
) -> Result<Json<Cart>, ApiError> {
    let customer = customer_id(&customer).map_err(ApiError::bad_request)?;
    let item = AddItem::parse(req)?;
    // The cart stays one that can be checked out: the new product must be
    // known, priced in the cart's currency, and fit an order's line count.
    let mut lines = store::items(&carts.db, &customer).await?;
    match lines.iter_mut().find(|l| l.product_id == item.product_id) {
        Some(line) => line.quantity = line.quantity.saturating_add(item.quantity),
        None => lines.push(LineItem {
            product_id: item.product_id,
            quantity: item.quantity,
        }),
    }
    if let Err(refused) = agora_catalog::price(carts.catalog.as_ref(), &lines).await {
        return Err(match refused {
            PricingError::Refused(errors) => ApiError::invalid(
                errors
                    .into_iter()
                    .map(|e| {
                        FieldError::new(added_field(&e.field, &lines, item.product_id), e.message)
                    })
                    .collect(),
            ),
            unavailable => unavailable.into(),
        });
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

/// A pricing error about the line being added is about the request's
/// `product_id`; one about the cart as a whole stays `items`.
fn added_field(field: &str, lines: &[LineItem], added: Uuid) -> String {
    let added_line = lines.iter().position(|l| l.product_id == added);
    match added_line {
        Some(i) if field == format!("items[{i}].product_id") => "product_id".into(),
        _ => field.to_owned(),
    }
}

async fn remove(
    State(carts): State<Carts>,
    Path((customer, product)): Path<(String, String)>,
) -> Result<Json<Cart>, ApiError> {
    let customer = customer_id(&customer).map_err(ApiError::bad_request)?;
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
/// The cart is priced first by the order's own rule, so a cart the order
/// service would refuse is a 422 here and stays as it is. With an
/// `Idempotency-Key`, a repeated checkout replays the first answer (looked
/// up before anything else: the first checkout emptied the cart).
async fn checkout(
    State(carts): State<Carts>,
    Path(customer): Path<String>,
    headers: HeaderMap,
    Json(req): Json<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let customer = customer_id(&customer).map_err(ApiError::bad_request)?;
    let key = idempotency::key_from(&headers)?;
    let fingerprint = idempotency::fingerprint(&(&customer, &req));
    let purchase = req.parse()?;
    let scope = format!("POST /carts/{customer}/checkout");
    let ttl = carts.idempotency_ttl;
    let replayed =
        idempotency::replay(&carts.db, &scope, key.as_deref(), &fingerprint, ttl).await?;
    if let Some(answer) = replayed {
        return Ok(answer);
    }
    let checked = async {
        let items = store::items(&carts.db, &customer).await?;
        if items.is_empty() {
            return Err(ApiError::invalid_field("items", "the cart is empty"));
        }
        agora_catalog::price(carts.catalog.as_ref(), &items).await?;
        Ok(items)
    }
    .await;
    idempotency::once(&carts.db, &scope, key, fingerprint, ttl, move |tx| {
        Box::pin(async move {
            // Refused only now, once the key is claimed: a concurrent
            // checkout with the same key that committed is replayed instead.
            let items = checked?;
            if store::take_all(tx, &customer).await? != items {
                return Err(ApiError::conflict(
                    "the cart changed during the checkout; try again",
                ));
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
            let status_url = format!("/api/v1/orders/{order_id}");
            let body = CheckedOut {
                order_id,
                status_url: status_url.clone(),
            };
            Ok(Answer::json(StatusCode::ACCEPTED, Some(status_url), &body))
        })
    })
    .await
}
