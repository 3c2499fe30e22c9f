//! `/health` and `/ready`, the same for every process kind (the embedded
//! app, a service, the gateway): `/health` says the process answers,
//! `/ready` runs its [`Probe`] and answers 200 only when every check is ok.

use std::sync::Arc;

use agora_platform::auth::Caller;
use agora_platform::breaker::Breaker;
use agora_platform::http::Json;
use agora_platform::supervise::Supervised;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

/// What a process checks to say whether it is ready.
#[async_trait]
pub trait Probe: Send + Sync + 'static {
    async fn checks(&self) -> Vec<Check>;
}

/// `/health` and `/ready` over `probe`.
pub fn router(probe: Arc<dyn Probe>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(probe)
}

/// The process is alive. Public.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Anyone learns whether the process is ready; only operators see which
/// check failed and why (the errors name hosts and queues).
#[utoipa::path(get, path = "/ready", tag = "operations",
    security((), ("bearer" = ["operator"])),
    responses(
        (status = 200, description = "Ready (operators also get every check)", body = Readiness),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 503, description = "Not ready (operators also get what is not)", body = Readiness),
    ))]
async fn ready(State(probe): State<Arc<dyn Probe>>, caller: Caller) -> Readiness {
    let mut readiness = Readiness::new(probe.checks().await);
    if !caller.account().is_some_and(|a| a.sees_everything()) {
        readiness.checks.clear();
    }
    readiness
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not ready`.
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
    /// Operators only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    checks: Vec<Check>,
}

/// 200 when every check is ok, else 503; the body names each check.
impl IntoResponse for Readiness {
    fn into_response(self) -> axum::response::Response {
        let status = if self.status == "ready" {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(self)).into_response()
    }
}

impl Readiness {
    pub fn new(checks: Vec<Check>) -> Self {
        let ready = checks.iter().all(|c| c.ok);
        Readiness {
            status: if ready { "ready" } else { "not ready" },
            checks,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Check {
    pub component: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A circuit breaker's state: an open breaker degrades, it does not
    /// make the service unready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub state: Option<&'static str>,
    /// How often a supervised task (a consumer) was started again after a
    /// panic; it is unready only while it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

impl Check {
    /// A check of `component`; a failure's detail (an address, a driver's
    /// message) goes to the log, and the public answer says only that it
    /// does not answer.
    pub fn new(component: String, result: Result<(), String>) -> Check {
        let error = result.err().map(|detail| {
            tracing::warn!(component = %component, error = %detail, "readiness check failed");
            "does not answer".to_owned()
        });
        Check {
            component,
            ok: error.is_none(),
            error,
            state: None,
            restarts: None,
        }
    }

    pub fn breaker(breaker: &Breaker) -> Check {
        Check {
            component: format!("breaker {}", breaker.name()),
            ok: true,
            error: None,
            state: Some(breaker.state()),
            restarts: None,
        }
    }

    pub fn supervised(task: &Supervised) -> Check {
        let running = task.is_running();
        Check {
            component: task.name().to_owned(),
            ok: running,
            error: (!running).then(|| "restarting after a panic".to_owned()),
            state: None,
            restarts: Some(task.restarts()),
        }
    }
}

/// This module's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready), components(schemas(Readiness, Check)))]
pub struct ApiDoc;
