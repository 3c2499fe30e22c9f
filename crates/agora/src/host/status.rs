//! What a host tells operators about the services it runs, from their own
//! storage and its own memory (operators and admins only):
//!
//! - `GET /api/v1/admin/outbox`: per service, the events not yet published
//!   and the age of the oldest;
//! - `GET /api/v1/admin/events?subject=`: every event a service published
//!   about one subject (an order's journey), with its causation;
//! - `GET /api/v1/admin/breakers`: each circuit breaker's state.
//!
//! Each answers a list with one entry per service of this host; the
//! gateway of the distributed mode asks every service and joins the lists.

use std::sync::Arc;

use agora_platform::auth::Operator;
use agora_platform::breaker::Breaker;
use agora_platform::clock::now_millis;
use agora_platform::http::{ApiError, Json, Query};
use agora_platform::Db;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event_log::{self, LoggedEvent, Range};

/// The services of a host, for these endpoints.
#[derive(Clone)]
pub struct Members {
    pub dbs: Arc<Vec<(&'static str, Db)>>,
    pub breakers: Arc<Vec<(&'static str, Arc<Breaker>)>>,
}

pub fn router(members: Members) -> Router {
    Router::new()
        .route("/api/v1/admin/outbox", get(outbox))
        .route("/api/v1/admin/events", get(events))
        .route("/api/v1/admin/breakers", get(breakers))
        .with_state(members)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backlog {
    pub service: String,
    /// Events written but not yet published.
    pub unpublished: i64,
    /// When the oldest of them was written.
    pub oldest_at: Option<String>,
    pub oldest_age_ms: Option<i64>,
}

/// Each service's events not yet published (operators).
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "operations",
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "One entry per service", body = Vec<Backlog>),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn outbox(
    State(members): State<Members>,
    _: Operator,
) -> Result<Json<Vec<Backlog>>, ApiError> {
    let mut out = Vec::with_capacity(members.dbs.len());
    for (service, db) in members.dbs.iter() {
        let Some(row) = db
            .query_opt(
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE published_at IS NULL",
                &[],
            )
            .await?
        else {
            continue;
        };
        let oldest_at = row.opt_text("oldest")?;
        let oldest_age_ms = oldest_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map(|at| now_millis() - (at.unix_timestamp_nanos() / 1_000_000) as i64);
        out.push(Backlog {
            service: (*service).to_owned(),
            unpublished: row.i64("n")?,
            oldest_at,
            oldest_age_ms,
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventParams {
    /// The order (the events' CloudEvents subject): up to 100 characters,
    /// not blank.
    #[param(required = true, value_type = String, max_length = 100, pattern = "[^\\s\\u0085]")]
    subject: Option<String>,
}

/// Events about one subject: a subject is required, so that no one asks
/// for a whole log at once.
#[utoipa::path(get, path = "/api/v1/admin/events", tag = "operations", params(EventParams),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "Every service's events about the subject", body = Vec<LoggedEvent>),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 422, response = agora_platform::openapi::Invalid),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn events(
    State(members): State<Members>,
    _: Operator,
    Query(params): Query<EventParams>,
) -> Result<Json<Vec<LoggedEvent>>, ApiError> {
    let subject = params
        .subject
        .filter(|s| !s.trim().is_empty() && s.chars().count() <= 100)
        .ok_or_else(|| ApiError::invalid_field("subject", "is required (an order id)"))?;
    let range = Range {
        subject: Some(subject),
        ..Range::default()
    };
    let mut out = Vec::new();
    for (service, db) in members.dbs.iter() {
        out.extend(event_log::select(service, db, &range).await?);
    }
    Ok(Json(out))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreakerState {
    pub service: String,
    pub breaker: String,
    pub state: String,
}

/// Each circuit breaker's state (operators).
#[utoipa::path(get, path = "/api/v1/admin/breakers", tag = "operations",
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "`closed`, `open` or `half-open`, by service", body = Vec<BreakerState>),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn breakers(State(members): State<Members>, _: Operator) -> Json<Vec<BreakerState>> {
    Json(
        members
            .breakers
            .iter()
            .map(|(service, b)| BreakerState {
                service: (*service).to_owned(),
                breaker: b.name().to_owned(),
                state: b.state().to_owned(),
            })
            .collect(),
    )
}

/// The paths above, which the gateway asks every service for.
pub const JOINED: [&str; 3] = [
    "/api/v1/admin/outbox",
    "/api/v1/admin/events",
    "/api/v1/admin/breakers",
];

/// This module's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(outbox, events, breakers),
    components(schemas(Backlog, LoggedEvent, BreakerState))
)]
pub struct ApiDoc;
