//! Shipping REST API (read only): `/api/v1/shipments`, a customer's own, or
//! everyone's for operators.

use agora_platform::auth::Signed;
use agora_platform::http::{ApiError, Json, OrderFilter, Query};
use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::domain::Shipment;
use crate::{store, Shipping};

pub fn router(shipping: Shipping) -> Router {
    Router::new()
        .route("/api/v1/shipments", get(list))
        .with_state(shipping)
}

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
