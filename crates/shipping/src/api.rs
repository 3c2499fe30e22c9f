//! Shipping REST API (read only): `/api/v1/shipments`, a customer's own, or
//! everyone's for operators.

use agora_platform::auth::Signed;
use agora_platform::http::{ApiError, Json, OrderFilter, Query};
use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::domain::{Shipment, ShipmentStatus};
use crate::{store, Shipping};

pub fn router(shipping: Shipping) -> Router {
    Router::new()
        .route("/api/v1/shipments", get(list))
        .with_state(shipping)
}

/// The shipping service's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), components(schemas(Shipment, ShipmentStatus)))]
pub struct ApiDoc;

/// The caller's shipments, newest first; for operators, everyone's.
/// `order_id=` keeps those of one order (at most one).
#[utoipa::path(get, path = "/api/v1/shipments", tag = "shipping",
    params(OrderFilter),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "A page of shipments, newest first", body = Vec<Shipment>),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
    ))]
async fn list(
    Signed(caller): Signed,
    State(shipping): State<Shipping>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Vec<Shipment>>, ApiError> {
    let (order_id, page) = filter.parse()?;
    let scope = caller.scope();
    Ok(Json(
        store::list(&shipping.db, order_id, scope.customer(), &page).await?,
    ))
}
