//! Payment REST API (read only): `/api/v1/payments`, a customer's own, or
//! everyone's for operators.

use agora_platform::auth::Signed;
use agora_platform::http::{ApiError, Json, OrderFilter, Query};
use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::domain::Payment;
use crate::{store, Payments};

pub fn router(payments: Payments) -> Router {
    Router::new()
        .route("/api/v1/payments", get(list))
        .with_state(payments)
}

async fn list(
    Signed(caller): Signed,
    State(payments): State<Payments>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Vec<Payment>>, ApiError> {
    let (order_id, page) = filter.parse()?;
    let scope = caller.scope();
    Ok(Json(
        store::list(&payments.db, order_id, scope.customer(), &page).await?,
    ))
}
