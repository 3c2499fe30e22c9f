//! Cart REST API: `/api/v1/carts/me` (the caller's cart), and
//! `/api/v1/carts/{customer_id}` when that id is the caller's.

use std::collections::HashMap;

use agora_platform::auth::Signed;
use agora_platform::http::{parse_id, ApiError, Json};
use agora_platform::idempotency::{self, Answer};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{AddItem, AddItemRequest, Cart, CartLine, CheckoutRequest, SetQuantityRequest};
use crate::{CartError, Carts};

pub fn router(carts: Carts) -> Router {
    Router::new()
        .route("/api/v1/carts/{customer_id}", get(show))
        .route("/api/v1/carts/{customer_id}/items", post(add))
        .route(
            "/api/v1/carts/{customer_id}/items/{product_id}",
            put(set).delete(remove),
        )
        .route("/api/v1/carts/{customer_id}/checkout", post(checkout))
        .with_state(carts)
}

/// The cart's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(show, add, set, remove, checkout),
    components(schemas(
        Cart,
        CartLine,
        AddItemRequest,
        SetQuantityRequest,
        CheckoutRequest,
        CheckedOut
    ))
)]
pub struct ApiDoc;

/// The customer whose cart a request is about: the caller, named `me` or by
/// its own customer id. Anyone else's cart is "not found" (carts cannot be
/// probed), also for operators: a cart is its customer's alone.
struct Owner(String);

impl<S: Send + Sync> FromRequestParts<S> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Signed(caller) = Signed::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let own = caller.customer_id();
        match params.get("customer_id").map(String::as_str) {
            None | Some("me") => Ok(Owner(own)),
            Some(named) if named == own => Ok(Owner(own)),
            Some(_) => Err(ApiError::not_found("no such cart")),
        }
    }
}

/// The caller's cart, each line priced with the catalog's current price;
/// `problems` says what keeps it from being checked out.
#[utoipa::path(get, path = "/api/v1/carts/{customer_id}", tag = "cart",
    params(("customer_id" = String, Path, description = "`me`, or the caller's own customer id (anyone else's cart is a 404)")),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn show(State(carts): State<Carts>, Owner(customer): Owner) -> Result<Json<Cart>, ApiError> {
    Ok(Json(carts.view(customer).await?))
}

/// Adds a product to the cart (to its line, if it has one). Refused when
/// the cart could then not be checked out: a product the catalog does not
/// know (422, `product_id`); with the cart's lines, a product priced in
/// another currency than theirs, a 101st line or more than 1,000 of one
/// product (409, naming what stands in the way).
#[utoipa::path(post, path = "/api/v1/carts/{customer_id}/items", tag = "cart",
    params(("customer_id" = String, Path, description = "`me`, or the caller's own customer id (anyone else's cart is a 404)")),
    request_body = AddItemRequest,
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "The cart, with the product added", body = Cart),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn add(
    State(carts): State<Carts>,
    Owner(customer): Owner,
    Json(req): Json<AddItemRequest>,
) -> Result<Json<Cart>, ApiError> {
    let item = AddItem::parse(req)?;
    Ok(Json(carts.add(customer, item).await?))
}

/// `{quantity}`: the line's new quantity (1 to the most a line may hold).
#[utoipa::path(put, path = "/api/v1/carts/{customer_id}/items/{product_id}", tag = "cart",
    params(
        ("customer_id" = String, Path, description = "`me`, or the caller's own customer id (anyone else's cart is a 404)"),
        ("product_id" = Uuid, Path, description = "The product of a line the cart holds"),
    ),
    request_body = SetQuantityRequest,
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "The cart, with the line's new quantity", body = Cart),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 422, response = agora_platform::openapi::Invalid),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn set(
    State(carts): State<Carts>,
    Owner(customer): Owner,
    Path(params): Path<HashMap<String, String>>,
    Json(req): Json<SetQuantityRequest>,
) -> Result<Json<Cart>, ApiError> {
    let product = params.get("product_id").map(String::as_str).unwrap_or("");
    let product_id = parse_id(product, "product id")?;
    let quantity = req.parse()?;
    Ok(Json(carts.set(customer, product_id, quantity).await?))
}

/// Takes a line out of the cart.
#[utoipa::path(delete, path = "/api/v1/carts/{customer_id}/items/{product_id}", tag = "cart",
    params(
        ("customer_id" = String, Path, description = "`me`, or the caller's own customer id (anyone else's cart is a 404)"),
        ("product_id" = Uuid, Path, description = "The product of a line the cart holds"),
    ),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "The cart, without the line", body = Cart),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn remove(
    State(carts): State<Carts>,
    Owner(customer): Owner,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Cart>, ApiError> {
    let product = params.get("product_id").map(String::as_str).unwrap_or("");
    let product_id = parse_id(product, "product id")?;
    Ok(Json(carts.remove(customer, product_id).await?))
}

/// A cart checked out: the order is created from it shortly after.
#[derive(Serialize, utoipa::ToSchema)]
struct CheckedOut {
    /// The id of the order the checkout becomes.
    order_id: Uuid,
    /// Where the order's status is read (`GET`): the `Location` too.
    #[schema(example = "/api/v1/orders/0190f4a2-7c1e-7d3b-9a41-2f6c1b0e9d57")]
    status_url: String,
}

/// Empties the cart and emits `CartCheckedOut` in one transaction; the order
/// service creates the order from the event (202: it exists shortly after).
/// The cart is priced first by the order's own rule, so a cart the order
/// service would refuse (empty, a product that is gone, more than is in
/// stock) is a 409 naming the lines, and stays as it is. With an
/// `Idempotency-Key`, a repeated checkout replays the first answer (looked
/// up before anything else: the first checkout emptied the cart).
#[utoipa::path(post, path = "/api/v1/carts/{customer_id}/checkout", tag = "cart",
    params(
        ("customer_id" = String, Path, description = "`me`, or the caller's own customer id (anyone else's cart is a 404)"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible characters: a repeated checkout with the same key (and body) gets the first answer again, for 24 hours unless `--idempotency-ttl-secs` says otherwise"),
    ),
    request_body = CheckoutRequest,
    security(("bearer" = ["customer"])),
    responses(
        (status = 202, description = "Checked out: the cart is empty and the order is being created; `Location` names it", body = CheckedOut,
            headers(
                ("location" = String, description = "The order's URL (`status_url`)"),
                ("idempotent-replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`"),
            )),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn checkout(
    State(carts): State<Carts>,
    Owner(customer): Owner,
    headers: HeaderMap,
    Json(req): Json<CheckoutRequest>,
) -> Result<Response, ApiError> {
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
    let checked = carts.checkable(&customer).await;
    idempotency::once(&carts.db, &scope, key, fingerprint, ttl, move |tx| {
        Box::pin(async move {
            // Refused only now, once the key is claimed: a concurrent
            // checkout with the same key that committed is replayed instead.
            let items = checked?;
            let order_id = Carts::check_out_in(tx, customer, purchase, items).await?;
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

/// The cart's refusals as answers, in one place.
impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::Invalid(invalid) => invalid.into(),
            CartError::Conflict(errors) => {
                ApiError::conflicting("the cart's lines stand in the way", errors)
            }
            CartError::NotInCart(_) => ApiError::not_found(e.to_string()),
            CartError::Changed => ApiError::conflict(e.to_string()),
            CartError::Pricing(e) => e.into(),
            CartError::Storage(e) => e.into(),
        }
    }
}
