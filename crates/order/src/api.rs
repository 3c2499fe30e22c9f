//! Order REST API: `/api/v1/orders`.

use std::time::Duration;

use agora_platform::auth::{Account, Operator, Signed};
use agora_platform::clock::to_rfc3339;
use agora_platform::http::{parse_id, ApiError, Json, Query};
use agora_platform::idempotency::{self, Answer};
use agora_platform::validate;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    Input, Order, OrderStats, OrderStatus, OrderSummary, PlaceOrder, PlaceOrderRequest,
    TimelineEntry,
};
use crate::{store, OrderError, Orders};

pub fn router(orders: Orders) -> Router {
    Router::new()
        .route("/api/v1/orders", get(list).post(place))
        .route("/api/v1/orders/stats", get(stats))
        .route("/api/v1/orders/{id}", get(show))
        .route("/api/v1/orders/{id}/cancel", post(cancel))
        .route(
            "/api/v1/orders/{id}/retry-compensation",
            post(retry_compensation),
        )
        .route("/api/v1/orders/{id}/force-cancel", post(force_cancel))
        .with_state(orders)
}

/// An order with its timeline.
#[derive(Serialize)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    pub timeline: Vec<TimelineEntry>,
}

async fn view(orders: &Orders, order: Order) -> Result<OrderView, ApiError> {
    let timeline = store::timeline(&orders.db, order.id).await?;
    Ok(OrderView { order, timeline })
}

/// The order `id`, if the caller may see it: its own, or any for
/// operators. Another customer's is "not found", so ids cannot be probed.
async fn visible(orders: &Orders, id: Uuid, caller: &Account) -> Result<Order, ApiError> {
    store::find(&orders.db, id)
        .await?
        .filter(|order| caller.may_see(&order.customer_id))
        .ok_or_else(|| ApiError::not_found(format!("order {id} does not exist")))
}

/// Creates an order for the signed-in customer; with an `Idempotency-Key`,
/// at most once per key and caller.
async fn place(
    State(orders): State<Orders>,
    Signed(caller): Signed,
    headers: HeaderMap,
    Json(mut req): Json<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let customer = caller.customer_id();
    if req
        .customer_id
        .as_ref()
        .is_some_and(|c| c.trim() != customer)
    {
        return Err(ApiError::invalid_field(
            "customer_id",
            "must be the signed-in customer's own id, or left out",
        ));
    }
    req.customer_id = Some(customer);
    let key = idempotency::key_from(&headers)?;
    let fingerprint = idempotency::fingerprint(&req);
    let cmd = PlaceOrder::parse(req)?;
    let db = orders.db.clone();
    let ttl = orders.idempotency_ttl;
    // Keys are the caller's own: another caller's key is another key.
    let scope = format!("POST /orders {}", caller.id);
    // A retry gets the first answer, whatever prices and stock are now (or
    // whether the catalog answers at all): the key is looked up before
    // anything is priced or checked.
    let replayed = idempotency::replay(&db, &scope, key.as_deref(), &fingerprint, ttl).await?;
    if let Some(answer) = replayed {
        return Ok(answer);
    }
    let prepared = async {
        let order = orders.priced(Uuid::now_v7(), cmd).await?;
        orders.precheck(&order.items).await?;
        Ok::<_, ApiError>(order)
    }
    .await;
    idempotency::once(&db, &scope, key, fingerprint, ttl, move |tx| {
        Box::pin(async move {
            // Refused only now: if a request in flight with the same key
            // committed meanwhile, `once` replays its answer instead.
            let order = prepared?;
            // A new id: the order is created here, its timeline is this entry.
            let timeline = orders
                .create_in(tx, &order, None)
                .await?
                .into_iter()
                .collect();
            let location = format!("/api/v1/orders/{}", order.id);
            Ok(Answer::json(
                StatusCode::CREATED,
                Some(location),
                &OrderView { order, timeline },
            ))
        })
    })
    .await
}

#[derive(Deserialize)]
struct ShowParams {
    /// Wait up to this many milliseconds for a terminal state.
    wait_ms: Option<u64>,
}

/// The longest a client may ask `GET /orders/{id}` to wait.
const MAX_WAIT: Duration = Duration::from_secs(30);

async fn show(
    State(orders): State<Orders>,
    Signed(caller): Signed,
    Path(id): Path<String>,
    Query(params): Query<ShowParams>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&id, "order id")?;
    let mut order = visible(&orders, id, &caller).await?;
    if let Some(ms) = params.wait_ms.filter(|_| !order.status.is_terminal()) {
        orders
            .wait_terminal(id, Duration::from_millis(ms).min(MAX_WAIT))
            .await?;
        order = visible(&orders, id, &caller).await?;
    }
    Ok(Json(view(&orders, order).await?))
}

#[derive(Deserialize)]
struct ListParams {
    customer_id: Option<String>,
    status: Option<String>,
    /// Created at or after this time (RFC 3339).
    since: Option<String>,
    /// Created before this time (RFC 3339).
    until: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    after: Option<String>,
}

#[derive(Serialize)]
struct OrderPage {
    items: Vec<OrderSummary>,
    limit: i64,
    offset: i64,
    /// The cursor of the next page (`after=`), when this one is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Uuid>,
}

/// The caller's orders; for operators, everyone's (`customer_id=` filters).
async fn list(
    State(orders): State<Orders>,
    Signed(caller): Signed,
    Query(params): Query<ListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(|s| {
            OrderStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status `{s}`")))
        })
        .transpose()?;
    let asked = validate::optional_text(params.customer_id.as_deref(), 100)
        .map_err(|message| ApiError::bad_request(format!("customer_id {message}")))?;
    // A customer's listing is its own whatever it asks for.
    let customer = match caller.scope().customer() {
        Some(own) => Some(own.to_owned()),
        None => asked,
    };
    let page = agora_platform::http::PageParams {
        limit: params.limit,
        offset: params.offset,
        after: params.after,
    }
    .page(50)?;
    let filter = store::ListFilter {
        customer_id: customer.as_deref(),
        status,
        since: instant(params.since.as_deref(), "since")?,
        until: instant(params.until.as_deref(), "until")?,
    };
    let items = store::list(&orders.db, &filter, &page).await?;
    let next = (items.len() as i64 == page.limit)
        .then(|| items.last().map(|o| o.id))
        .flatten();
    Ok(Json(OrderPage {
        items,
        limit: page.limit,
        offset: page.offset,
        next,
    }))
}

/// A time filter, in the form the orders store theirs (so that text order
/// is time order).
fn instant(text: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    text.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339)
            .map(|at| to_rfc3339(at.to_offset(time::UtcOffset::UTC)))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "{name} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"
                ))
            })
    })
    .transpose()
}

#[derive(Deserialize)]
struct StatsParams {
    /// The last this many seconds (1 to 3,600; 60 by default).
    window_secs: Option<u64>,
}

/// Operators: orders in flight by state, and those that ended in the window
/// with the time they took (over the latest 1,000 of them).
async fn stats(
    State(orders): State<Orders>,
    _: Operator,
    Query(params): Query<StatsParams>,
) -> Result<Json<OrderStats>, ApiError> {
    let window = params.window_secs.unwrap_or(60);
    if !(1..=3600).contains(&window) {
        return Err(ApiError::bad_request("window_secs must be 1 to 3600"));
    }
    let now = OffsetDateTime::now_utc();
    let since = to_rfc3339(now - time::Duration::seconds(window as i64));
    let read = store::stats(&orders.db, &since, 1000).await?;
    Ok(Json(OrderStats::new(
        window,
        &read.in_flight,
        &read.ended,
        &read.durations,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    reason: Option<String>,
}

/// The body is optional: `{"reason": "…"}`. With an `Idempotency-Key`, a
/// repeated cancel replays the first answer.
async fn cancel(
    State(orders): State<Orders>,
    Signed(caller): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "order id")?;
    visible(&orders, id, &caller).await?;
    let key = idempotency::key_from(&headers)?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let req: CancelRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
        req.reason
    };
    let reason = validate::optional_text(reason.as_deref(), 500)
        .map_err(|message| ApiError::invalid_field("reason", message))?
        .unwrap_or_else(|| "cancelled by the customer".into());
    let fingerprint = idempotency::fingerprint(&(id, &reason));
    let db = orders.db.clone();
    let ttl = orders.idempotency_ttl;
    let scope = format!("POST /orders/{{id}}/cancel {}", caller.id);
    idempotency::once(&db, &scope, key, fingerprint, ttl, move |tx| {
        Box::pin(async move {
            let order = orders.cancel_in(tx, id, reason, &caller).await?;
            let timeline = store::timeline(&mut *tx, id).await?;
            Ok(Answer::json(
                StatusCode::OK,
                None,
                &OrderView { order, timeline },
            ))
        })
    })
    .await
}

/// Operator: emit the pending compensation again (REQUIRES_ATTENTION only).
async fn retry_compensation(
    State(orders): State<Orders>,
    Operator(operator): Operator,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&id, "order id")?;
    let order = orders
        .operate(id, Input::RetryCompensation, &operator)
        .await?;
    Ok(Json(view(&orders, order).await?))
}

/// Operator: end an order whose compensation is pending without waiting.
async fn force_cancel(
    State(orders): State<Orders>,
    Operator(operator): Operator,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&id, "order id")?;
    let order = orders.operate(id, Input::ForceCancel, &operator).await?;
    Ok(Json(view(&orders, order).await?))
}

/// The order service's refusals as answers, in one place.
impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::NotFound(_) => ApiError::not_found(e.to_string()),
            OrderError::Refused(_) | OrderError::Busy => ApiError::conflict(e.to_string()),
            OrderError::Vanished(_) => ApiError::internal(e),
            OrderError::Storage(e) => e.into(),
        }
    }
}
