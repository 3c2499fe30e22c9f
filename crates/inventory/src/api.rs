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

#[derive(Deserialize)]
struct ListParams {
    /// Comma-separated product ids: only these (the order service's fast
    /// stock check).
    ids: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    after: Option<String>,
}

/// A page of stock by product id (`after` = the last product id seen), or
/// the stock of the products `ids` names (one query, at most 500 ids).
async fn list(
    State(inventory): State<Inventory>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<Stock>>, ApiError> {
    if let Some(ids) = params.ids.as_deref() {
        return Ok(Json(
            store::find_many(&inventory.db, &parse_ids(ids)?).await?,
        ));
    }
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
        after: params.after,
    }
    .page(100)?;
    Ok(Json(store::list(&inventory.db, &page).await?))
}

#[derive(Deserialize)]
struct ReservationParams {
    status: Option<String>,
    order_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    after: Option<String>,
}

/// Reservations, filtered by status (RESERVED, REJECTED, RELEASED, SOLD,
/// CANCELLED) and order.
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
