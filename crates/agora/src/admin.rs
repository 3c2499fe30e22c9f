//! Operator endpoints over the dead-letter queues, served by the embedded
//! app and by the gateway of the distributed mode:
//!
//! - `GET  /api/v1/admin/dead-letters?service&event_type&event_id&error&older_than_secs&limit&after`
//! - `GET  /api/v1/admin/dead-letters/{service}/{event_id}` (with the message)
//! - `POST /api/v1/admin/dead-letters/replay?…[&dry_run=true]`
//! - `POST /api/v1/admin/dead-letters/purge?…[&dry_run=true]`
//!
//! Operators and admins only. Replay and purge act on what the filter selects and refuse an empty
//! filter unless `all=true` says so.

use std::sync::Arc;

use agora_platform::auth::Operator;
use agora_platform::dead_letters::{Action, DeadLetter, DeadLetterQueues, Filter};
use agora_platform::http::{ApiError, Json, PageParams, Query};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

type Queues = Arc<dyn DeadLetterQueues>;

pub fn dead_letter_router(queues: Queues) -> Router {
    Router::new()
        .route("/api/v1/admin/dead-letters", get(list))
        .route("/api/v1/admin/dead-letters/{service}/{event_id}", get(show))
        .route("/api/v1/admin/dead-letters/replay", post(replay))
        .route("/api/v1/admin/dead-letters/purge", post(purge))
        .with_state(queues)
}

/// The filter plus the switches of replay and purge (spelled out: query
/// strings and `#[serde(flatten)]` do not mix). The document describes
/// the same query as [`Selection`] and `dry_run`. Any other parameter is
/// refused (400): a misspelt filter next to `all=true` must not empty
/// every queue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    service: Option<String>,
    event_type: Option<String>,
    event_id: Option<String>,
    error: Option<String>,
    older_than_secs: Option<u64>,
    #[serde(default)]
    dry_run: bool,
    /// Only `true` means something: every letter, when nothing else is
    /// named; `false` is refused rather than read as "no".
    all: Option<bool>,
}

/// What replay and purge act on, as the document says it: one query
/// parameter per field (a form-style, exploded object) with at least one
/// of them, since `all` may only be `true`: a filter, or `all=true`.
struct Selection;

impl utoipa::PartialSchema for Selection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .property("service", text("Only letters of this consuming service"))
            .property("event_type", text("Only letters of this event type"))
            .property("event_id", text("Only the letters of this event"))
            .property("error", text("Only letters whose error is exactly this"))
            .property(
                "older_than_secs",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(agora_platform::dead_letters::MAX_AGE_SECS))
                    .description(Some(
                        "Only letters that failed at least this many seconds ago (1 to ten years)",
                    )),
            )
            .property(
                "all",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([true]))
                    .description(Some("Every letter, when no filter is given")),
            )
            .min_properties(Some(1))
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ))
            .into()
    }
}

impl utoipa::ToSchema for Selection {}

impl Params {
    fn filter(&self) -> Filter {
        Filter {
            service: self.service.clone(),
            event_type: self.event_type.clone(),
            event_id: self.event_id.clone(),
            error: self.error.clone(),
            older_than_secs: self.older_than_secs,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Outcome {
    /// `replay` or `purge`.
    #[schema(value_type = String)]
    action: &'static str,
    dry_run: bool,
    count: usize,
    letters: Vec<DeadLetter>,
}

fn failed(e: anyhow::Error) -> ApiError {
    tracing::warn!(error = %e, "dead-letter operation failed");
    ApiError::unavailable("the dead-letter queues are unavailable; try again")
}

fn without_bodies(mut letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    for l in &mut letters {
        l.body.clear();
    }
    letters
}

/// The filter and a page: `limit` (1 to 500, 100 by default) and `after`
/// (`<service>/<event_id>` of the last letter of the previous page: one
/// event may be dead-lettered by several services).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    service: Option<String>,
    event_type: Option<String>,
    event_id: Option<String>,
    error: Option<String>,
    /// Only letters that failed at least this many seconds ago (1 to ten years).
    #[param(minimum = 1, maximum = 315360000)]
    older_than_secs: Option<u64>,
    limit: Option<i64>,
    /// `<service>/<event_id>` of the last letter of the previous page.
    #[param(pattern = "^[^/]+/.+$")]
    after: Option<String>,
}

/// Dead letters, by service then event id, without their messages (operators).
#[utoipa::path(get, path = "/api/v1/admin/dead-letters", tag = "operations", params(ListParams),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "A page of dead letters", body = Vec<DeadLetter>),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn list(
    State(queues): State<Queues>,
    _: Operator,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let filter = Filter {
        service: params.service,
        event_type: params.event_type,
        event_id: params.event_id,
        error: params.error,
        older_than_secs: params.older_than_secs,
    };
    filter.check().map_err(ApiError::bad_request)?;
    let page = PageParams {
        limit: params.limit,
        ..PageParams::default()
    }
    .page(100)?;
    let after = params
        .after
        .as_deref()
        .map(|raw| {
            raw.split_once('/')
                .map(|(service, id)| (service.to_owned(), id.to_owned()))
                .ok_or_else(|| ApiError::bad_request("after must be <service>/<event_id>"))
        })
        .transpose()?;
    let mut letters = queues
        .act(Action::List, &filter, true)
        .await
        .map_err(failed)?;
    // By service, then event id (UUID v7: the order they were made): a
    // cursor past a letter that was purged or replayed meanwhile still
    // knows where to go on.
    letters.sort_by(|a, b| (&a.service, &a.event_id).cmp(&(&b.service, &b.event_id)));
    let letters: Vec<DeadLetter> = letters
        .into_iter()
        .filter(|l| {
            after
                .as_ref()
                .is_none_or(|(service, id)| (&l.service, &l.event_id) > (service, id))
        })
        .take(page.limit as usize)
        .collect();
    Ok(Json(without_bodies(letters)))
}

/// One dead letter with its message, secrets masked (operators).
#[utoipa::path(get, path = "/api/v1/admin/dead-letters/{service}/{event_id}", tag = "operations",
    params(("service" = String, Path, description = "The consuming service"),
           ("event_id" = String, Path, description = "The event's id")),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "The letter", body = DeadLetter),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn show(
    State(queues): State<Queues>,
    _: Operator,
    Path((service, event_id)): Path<(String, String)>,
) -> Result<Json<DeadLetter>, ApiError> {
    let filter = Filter::one(&service, &event_id);
    let letters = queues
        .act(Action::List, &filter, true)
        .await
        .map_err(failed)?;
    letters
        .into_iter()
        .next()
        .map(|letter| Json(letter.redacted()))
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {event_id} for {service}")))
}

/// Back onto the service's queue, event id kept; a filter or `all=true` is required (operators).
#[utoipa::path(post, path = "/api/v1/admin/dead-letters/replay", tag = "operations",
    params(
        ("selection" = inline(Selection), Query, style = Form, explode,
            description = "The filter (`service`, `event_type`, `event_id`, `error`, `older_than_secs`), or `all=true` for every letter: one of them is required"),
        ("dry_run" = Option<bool>, Query, description = "`true`: only say what would be replayed"),
    ),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "What was (or, with `dry_run`, would be) taken", body = Outcome),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn replay(
    State(queues): State<Queues>,
    _: Operator,
    Query(params): Query<Params>,
) -> Result<Json<Outcome>, ApiError> {
    act(queues, Action::Replay, params).await
}

/// Deleted; a filter or `all=true` is required (operators).
#[utoipa::path(post, path = "/api/v1/admin/dead-letters/purge", tag = "operations",
    params(
        ("selection" = inline(Selection), Query, style = Form, explode,
            description = "The filter (`service`, `event_type`, `event_id`, `error`, `older_than_secs`), or `all=true` for every letter: one of them is required"),
        ("dry_run" = Option<bool>, Query, description = "`true`: only say what would be purged"),
    ),
    security(("bearer" = ["operator"])),
    responses(
        (status = 200, description = "What was (or, with `dry_run`, would be) taken", body = Outcome),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 503, response = agora_platform::openapi::Unavailable),
    ))]
async fn purge(
    State(queues): State<Queues>,
    _: Operator,
    Query(params): Query<Params>,
) -> Result<Json<Outcome>, ApiError> {
    act(queues, Action::Purge, params).await
}

async fn act(queues: Queues, action: Action, params: Params) -> Result<Json<Outcome>, ApiError> {
    let f = &params.filter();
    f.check().map_err(ApiError::bad_request)?;
    if params.all == Some(false) {
        return Err(ApiError::bad_request(
            "all takes only true (every letter); leave it out otherwise",
        ));
    }
    let unfiltered = f.is_empty();
    if unfiltered && params.all != Some(true) {
        return Err(ApiError::bad_request(
            "name what to act on (service, event_type, event_id, older_than_secs) or pass all=true",
        ));
    }
    let letters = queues
        .act(action, f, params.dry_run)
        .await
        .map_err(failed)?;
    let name = if action == Action::Replay {
        "replay"
    } else {
        "purge"
    };
    tracing::info!(
        action = name,
        dry_run = params.dry_run,
        count = letters.len(),
        "dead letters"
    );
    Ok(Json(Outcome {
        action: name,
        dry_run: params.dry_run,
        count: letters.len(),
        letters: without_bodies(letters),
    }))
}

/// This module's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show, replay, purge),
    components(schemas(DeadLetter, Outcome))
)]
pub struct ApiDoc;
