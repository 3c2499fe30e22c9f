//! Notification REST API (read only): `/api/v1/notifications`, of a
//! customer's own orders, or of everyone's for operators.

use agora_platform::auth::Signed;
use agora_platform::http::{ApiError, Json, OrderFilter, Query};
use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::domain::{Channel, Notification};
use crate::{store, Notifications};

pub fn router(notifications: Notifications) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(list))
        .with_state(notifications)
}

/// The notification service's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), components(schemas(Notification, Channel)))]
pub struct ApiDoc;

/// The notifications of the caller's orders, oldest first; for operators,
/// everyone's. `order_id=` keeps those of one order.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notification",
    params(OrderFilter),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "A page of notifications, oldest first", body = Vec<Notification>),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
    ))]
async fn list(
    Signed(caller): Signed,
    State(notifications): State<Notifications>,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let (order_id, page) = filter.parse()?;
    let scope = caller.scope();
    Ok(Json(
        store::list(&notifications.db, order_id, scope.customer(), &page).await?,
    ))
}
