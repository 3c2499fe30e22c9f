//! Notification REST API (read only): `/api/v1/notifications`, of a
//! customer's own orders, or of everyone's for operators.

use agora_platform::auth::Signed;
use agora_platform::http::{ApiError, Json, OrderFilter, Query};
use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::domain::Notification;
use crate::{store, Notifications};

pub fn router(notifications: Notifications) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(list))
        .with_state(notifications)
}

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
