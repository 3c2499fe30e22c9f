//! GraphQL at `/graphql`, served by the embedded app and by the gateway
//! beside the REST API it is made of.
//!
//! - `POST /graphql` (`application/json`) runs a query or a mutation;
//! - a WebSocket at `/graphql` (`graphql-transport-ws`) runs subscriptions,
//!   its bearer token given in `connection_init` as `{"Authorization":
//!   "Bearer …"}`;
//! - `GET /graphql` in a browser is GraphiQL, from assets inside the binary
//!   (`assets/vendor`, from the npm packages, with their licences).
//!
//! Every resolver calls the public API in-process as the caller
//! ([`agora_platform::client`]): validation, roles, ownership and
//! idempotency are REST's own, and the embedded app (the services' routers)
//! and the gateway (its proxy to the services) answer alike. A page of
//! products with their stock is two API calls whatever its size (a loader
//! batches the stock), and a query deeper or costlier than the limits in
//! [`schema`] is refused before it runs.

mod follow;
mod loaders;
mod refusal;
mod schema;
mod types;

use agora_platform::auth;
use agora_platform::client::{Api, Caller};
use agora_platform::http::{ApiError, Json};
use agora_platform::server::Client as Peer;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use schema::{AgoraSchema, MAX_COMPLEXITY, MAX_DEPTH};

#[derive(Clone)]
struct Graphql {
    api: Api,
    schema: AgoraSchema,
}

/// `/graphql` and GraphiQL's assets, over `api` (the API router behind its
/// token verification). The route itself is served behind the same
/// verification, so a forged or expired token is a 401 before anything
/// runs.
pub fn router(api: Router) -> Router {
    let state = Graphql {
        api: Api::new(api),
        schema: schema::build(),
    };
    Router::new()
        .route("/graphql", get(page_or_socket).post(execute))
        .route("/graphql/assets/{file}", get(asset))
        .with_state(state)
}

/// The schema in GraphQL's own language (SDL), as served.
pub fn sdl() -> String {
    schema::build().sdl()
}

/// Who calls: the bearer token (already verified by the route's layer) and
/// the client's address (counted by the API's per-client limits).
struct Asker(Caller);

impl FromRequestParts<Graphql> for Asker {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Graphql) -> Result<Self, Response> {
        let token = auth::bearer(&parts.headers)
            .map_err(IntoResponse::into_response)?
            .map(str::to_owned);
        let peer = parts.extensions.get::<Peer>().copied();
        Ok(Asker(state.api.as_visitor(token, peer)))
    }
}

/// What one request's resolvers share: its caller and its loaders.
fn request_data(caller: Caller) -> Data {
    let mut data = Data::default();
    data.insert(loaders::StockLoader::for_request(caller.clone()));
    data.insert(caller);
    data
}

async fn execute(
    State(state): State<Graphql>,
    Asker(caller): Asker,
    Json(request): Json<async_graphql::Request>,
) -> GraphQLResponse {
    let mut request = request;
    request.data = request_data(caller);
    let mut response = state.schema.execute(request).await;
    response.errors.iter_mut().for_each(refusal::label);
    response.into()
}

/// A WebSocket upgrade runs subscriptions; any other GET is GraphiQL.
async fn page_or_socket(
    State(state): State<Graphql>,
    Asker(caller): Asker,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    protocol: Result<GraphQLProtocol, StatusCode>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return graphiql();
    };
    let Ok(protocol) = protocol else {
        return ApiError::bad_request(
            "a WebSocket to /graphql speaks graphql-transport-ws (Sec-WebSocket-Protocol)",
        )
        .into_response();
    };
    let api = state.api.clone();
    let peer = caller.peer();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            GraphQLWebSocket::new(stream, state.schema, protocol)
                .on_connection_init(move |payload| connection_init(api, peer, payload))
                .serve()
        })
        .into_response()
}

/// A subscription's token comes in `connection_init` (browsers cannot set
/// a WebSocket's headers): it is checked once here, then at every read.
async fn connection_init(
    api: Api,
    peer: Option<Peer>,
    payload: serde_json::Value,
) -> async_graphql::Result<Data> {
    let authorization = ["Authorization", "authorization"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()));
    let token = match authorization {
        None => None,
        Some(value) => Some(
            auth::bearer_of(value)
                .map_err(|_| async_graphql::Error::new("expected Authorization: Bearer <token>"))?
                .to_owned(),
        ),
    };
    let caller = api.as_visitor(token, peer);
    if caller.token.is_some() {
        let me = caller.get("/api/v1/me").await;
        if !me.ok() {
            return Err(refusal::refused(&me));
        }
    }
    Ok(request_data(caller))
}

// --- GraphiQL ----------------------------------------------------------------

/// GraphiQL's page: no inline code, so the page keeps a strict policy
/// (its fonts are `data:` URLs inside its stylesheet).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; font-src 'self' data:; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

fn graphiql() -> Response {
    let page = include_str!("../assets/graphiql.html");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
        .into_response()
}

/// The assets, by name: nothing else is served from the directory.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../assets/vendor/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/react-dom.production.min.js"),
    ),
    (
        "start.js",
        "text/javascript",
        include_bytes!("../assets/start.js"),
    ),
    ("page.css", "text/css", include_bytes!("../assets/page.css")),
];

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
