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
    Awaiting, Input, ItemRequest, Order, OrderStats, OrderStatus, OrderSummary, PlaceOrder,
    PlaceOrderRequest, TimelineEntry,
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

/// The order service's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, place, stats, show, cancel, retry_compensation, force_cancel),
    components(schemas(
        OrderPage,
        OrderSummary,
        OrderView,
        Order,
        TimelineEntry,
        OrderStatus,
        Awaiting,
        OrderStats,
        PlaceOrderRequest,
        ItemRequest,
        CancelRequest
    )),
    modifiers(&OptionalCancelBody)
)]
pub struct ApiDoc;

/// The cancel body may be left out, but is never `null`: an `Option` body
/// would say both, so the body is described as it is and only made
/// optional here.
struct OptionalCancelBody;

impl utoipa::Modify for OptionalCancelBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let body = openapi
            .paths
            .paths
            .get_mut("/api/v1/orders/{id}/cancel")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut());
        if let Some(body) = body {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// An order with its timeline.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    /// Every state change and note, oldest first.
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
/// at most once per key and caller. Lines that cannot be priced (a product
/// the catalog does not know, mixed currencies) are a 422 naming them;
/// lines asking for more than is in stock now, a 409 naming them.
#[utoipa::path(post, path = "/api/v1/orders", tag = "order", request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
        description = "1 to 255 visible characters: the same key (from the same caller, with the same body) gets the first answer again, and creates the order at most once")),
    security(("bearer" = ["customer"])),
    responses(
        (status = 201, description = "Created (PENDING); `Location` names it", body = OrderView,
            headers(
                ("location" = String, description = "The new order's URL"),
                ("idempotent-replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`"),
            )),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ShowParams {
    /// Wait up to this many milliseconds for a terminal state (at most
    /// 30,000: a longer wait is cut to that).
    #[param(minimum = 0)]
    wait_ms: Option<i64>,
}

/// The longest a client may ask `GET /orders/{id}` to wait.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// One order with its timeline: the caller's own, or any for operators;
/// with `wait_ms`, once it reaches a final state or the wait is over.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "order",
    params(("id" = Uuid, Path, description = "The order's id"), ShowParams),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 404, response = agora_platform::openapi::NotFound),
    ))]
async fn show(
    State(orders): State<Orders>,
    Signed(caller): Signed,
    Path(id): Path<String>,
    Query(params): Query<ShowParams>,
) -> Result<Json<OrderView>, ApiError> {
    let id = parse_id(&id, "order id")?;
    let mut order = visible(&orders, id, &caller).await?;
    let wait_ms = params
        .wait_ms
        .map(|ms| u64::try_from(ms).map_err(|_| ApiError::bad_request("wait_ms must be 0 or more")))
        .transpose()?;
    if let Some(ms) = wait_ms.filter(|_| !order.status.is_terminal()) {
        orders
            .wait_terminal(id, Duration::from_millis(ms).min(MAX_WAIT))
            .await?;
        order = visible(&orders, id, &caller).await?;
    }
    Ok(Json(view(&orders, order).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this customer's orders (operators; a customer always gets its
    /// own): up to 100 characters; blank is none.
    #[param(
        pattern = "^[\\s\\u0085]*([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,98}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*)?$"
    )]
    customer_id: Option<String>,
    /// Only orders in this state.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Created before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Items per page: 1 to 500 (50 by default; out of bounds is brought within).
    limit: Option<i64>,
    /// Items to skip: at most 10,000 (deeper pages are read with `after`).
    /// Items to skip: at most 10,000 (deeper pages are read with `after`).
    #[param(maximum = 10000)]
    offset: Option<i64>,
    /// The id of the last order of the previous page (its `next`): the orders after it.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

/// A page of orders, newest first.
#[derive(Serialize, utoipa::ToSchema)]
struct OrderPage {
    items: Vec<OrderSummary>,
    limit: i64,
    offset: i64,
    /// The cursor of the next page (`after=`), when this one is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    next: Option<Uuid>,
}

/// The caller's orders; for operators, everyone's (`customer_id=` filters).
#[utoipa::path(get, path = "/api/v1/orders", tag = "order", params(ListParams),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "A page of orders, newest first", body = OrderPage),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
    ))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsParams {
    /// The last this many seconds (1 to 3,600; 60 by default).
    #[param(minimum = 1, maximum = 3600)]
    window_secs: Option<u64>,
}

/// Operators: orders in flight by state, and those that ended in the window
/// with the time they took (over the latest 1,000 of them).
#[utoipa::path(get, path = "/api/v1/orders/stats", tag = "order", params(StatsParams),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "The orders' figures", body = OrderStats),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
    ))]
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

/// `POST /orders/{id}/cancel`'s body, which may be left out.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "ordered by mistake"}))]
struct CancelRequest {
    /// Up to 500 characters, no control characters; "cancelled by the
    /// customer" when left out.
    #[schema(
        pattern = "^[\\s\\u0085]*([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,498}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*)?$"
    )]
    reason: Option<String>,
}

/// Cancels the caller's order (or any, for operators): at once while
/// PENDING, else COMPENSATING until the stock and the payment are given
/// back. Refused once it is being cancelled or has ended.
/// The body is optional: `{"reason": "…"}`. With an `Idempotency-Key`, a
/// repeated cancel replays the first answer.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "order",
    request_body(content = CancelRequest,
        description = "Optional: without a body (or with no `reason`), the reason is \"cancelled by the customer\""),
    params(
        ("id" = Uuid, Path, description = "The order's id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
            description = "1 to 255 visible characters: the same key (from the same caller, with the same reason) gets the first answer again"),
    ),
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "Cancelled, or compensating", body = OrderView,
            headers(("idempotent-replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`"))),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
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
#[utoipa::path(post, path = "/api/v1/orders/{id}/retry-compensation", tag = "order",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "COMPENSATING again", body = OrderView),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 409, response = agora_platform::openapi::Conflict),
    ))]
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

/// Operator: end an order whose compensation is pending without waiting
/// (COMPENSATING or REQUIRES_ATTENTION only).
#[utoipa::path(post, path = "/api/v1/orders/{id}/force-cancel", tag = "order",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "CANCELLED", body = OrderView),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 409, response = agora_platform::openapi::Conflict),
    ))]
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
