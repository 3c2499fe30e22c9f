//! Payment REST API (read only): `/api/v1/payments`, a customer's own, or
//! everyone's for operators.

use agora_platform::auth::Signed;
use agora_platform::http::{ApiError, Json, OrderFilter, Query};
use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::domain::{Payment, PaymentStatus};
use crate::{store, Payments};

pub fn router(payments: Payments) -> Router {
    Router::new()
        .route("/api/v1/payments", get(list))
        .with_state(payments)
}

/// The payment service's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), components(schemas(Payment, PaymentStatus)))]
pub struct ApiDoc;

/// The caller's payments, newest first; for operators, everyone's.
/// `order_id=` keeps those of one order (at most one: an order is
/// charged once).
#[utoipa::path(get, path = "/api/v1/payments", tag = "payment",
    params(OrderFilter),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "A page of payments, newest first", body = Vec<Payment>),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
    ))]
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
