//! Inventory REST API: `/api/v1/inventory`.

use agora_platform::auth::{Admin, Operator};
use agora_platform::http::{parse_id, parse_ids, ApiError, Json, PageParams, Query};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::domain::{Adjustment, AdjustmentRequest, Reservation, ReservationStatus, Stock};
use crate::store;
use crate::{Inventory, InventoryError};

pub fn router(inventory: Inventory) -> Router {
    Router::new()
        .route("/api/v1/inventory", get(list))
        .route("/api/v1/inventory/reservations", get(reservations))
        .route("/api/v1/inventory/{product_id}", get(show))
        .route("/api/v1/inventory/{product_id}/adjust", post(adjust))
        .with_state(inventory)
}

/// The inventory's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, reservations, show, adjust),
    components(schemas(Stock, Reservation, ReservationStatus, AdjustmentRequest))
)]
pub struct ApiDoc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Comma-separated product ids: only these (the order service's fast
    /// stock check).
    #[param(
        pattern = r"^(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})(,([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})){0,499})?$"
    )]
    ids: Option<String>,
    /// Products per page: 1 to 500 (100 unless told).
    limit: Option<i64>,
    /// Products to skip: at most 10,000 (deeper pages are read with `after`).
    /// Items to skip: at most 10,000 (deeper pages are read with `after`).
    #[param(maximum = 10000)]
    offset: Option<i64>,
    /// The last product id of the previous page: the page holds the ones after it.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

/// A page of stock by product id (`after` = the last product id seen), or
/// the stock of the products `ids` names (one query, at most 500 ids). Public.
#[utoipa::path(get, path = "/api/v1/inventory", tag = "inventory", params(ListParams),
    responses(
        (status = 200, description = "Stock levels, by product id", body = Vec<Stock>),
        (status = 400, response = agora_platform::openapi::BadRequest),
    ))]
async fn list(
    State(inventory): State<Inventory>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<Stock>>, ApiError> {
    // Every parameter is checked, whether `ids` makes the page moot or not.
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
        after: params.after,
    }
    .page(100)?;
    if let Some(ids) = params.ids.as_deref() {
        return Ok(Json(
            store::find_many(&inventory.db, &parse_ids(ids)?).await?,
        ));
    }
    Ok(Json(store::list(&inventory.db, &page).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReservationParams {
    /// Only reservations in this state.
    #[param(value_type = Option<ReservationStatus>)]
    status: Option<String>,
    /// Only this order's reservation.
    #[param(value_type = Option<Uuid>)]
    order_id: Option<String>,
    /// Reservations per page: 1 to 500 (50 unless told).
    limit: Option<i64>,
    /// Reservations to skip: at most 10,000 (deeper pages are read with `after`).
    /// Items to skip: at most 10,000 (deeper pages are read with `after`).
    #[param(maximum = 10000)]
    offset: Option<i64>,
    /// The last order id of the previous page: the page holds the ones after it.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

/// Reservations by order id, filtered by status (RESERVED, REJECTED,
/// RELEASED, SOLD, CANCELLED) and order (operators).
#[utoipa::path(get, path = "/api/v1/inventory/reservations", tag = "inventory",
    params(ReservationParams),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "A page of reservations, by order id", body = Vec<Reservation>),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
    ))]
async fn reservations(
    State(inventory): State<Inventory>,
    _: Operator,
    Query(params): Query<ReservationParams>,
) -> Result<Json<Vec<Reservation>>, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(|s| {
            ReservationStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status `{s}`")))
        })
        .transpose()?;
    let order_id = params
        .order_id
        .as_deref()
        .map(|id| parse_id(id, "order_id"))
        .transpose()?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
        after: params.after,
    }
    .page(50)?;
    Ok(Json(
        store::reservations(&inventory.db, status, order_id, &page).await?,
    ))
}

/// One product's stock: available, reserved and sold units, its opening
/// stock and the adjustments since. Public.
#[utoipa::path(get, path = "/api/v1/inventory/{product_id}", tag = "inventory",
    params(("product_id" = Uuid, Path, description = "The product's id")),
    responses(
        (status = 200, description = "The product's stock", body = Stock),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 404, response = agora_platform::openapi::NotFound),
    ))]
async fn show(
    State(inventory): State<Inventory>,
    Path(id): Path<String>,
) -> Result<Json<Stock>, ApiError> {
    let id = parse_id(&id, "product id")?;
    store::find(&inventory.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no stock is kept for product {id}")))
}

/// Adds units to (or takes them from) a product's available stock, with
/// the reason (admins): a count, a delivery, a loss.
#[utoipa::path(post, path = "/api/v1/inventory/{product_id}/adjust", tag = "inventory",
    params(("product_id" = Uuid, Path, description = "The product's id")),
    request_body = AdjustmentRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The product's stock, adjusted", body = Stock),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn adjust(
    State(inventory): State<Inventory>,
    _: Admin,
    Path(id): Path<String>,
    Json(req): Json<AdjustmentRequest>,
) -> Result<Json<Stock>, ApiError> {
    let id = parse_id(&id, "product id")?;
    let adjustment = Adjustment::parse(req)?;
    let stock = inventory.adjust(id, &adjustment).await?;
    Ok(Json(stock))
}

/// Inventory's refusals as answers, in one place.
impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::NoStock(_) => ApiError::not_found(e.to_string()),
            InventoryError::BelowZero { .. } => ApiError::conflict(e.to_string()),
            InventoryError::Vanished(_) => ApiError::internal(e),
            InventoryError::Storage(e) => e.into(),
        }
    }
}
