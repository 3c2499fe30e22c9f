//! Identity REST API: `/api/v1/auth/*` (anyone), `/api/v1/me` (any signed-in
//! account), `/api/v1/admin/users` (admins) and the public keys at
//! `/.well-known/jwks.json`.

use agora_platform::auth::{Admin, JwkSet, Signed};
use agora_platform::http::{parse_id, ApiError, Json, PageParams, Query};
use agora_platform::server::Client;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    parse_role, Account, AccountChange, Credentials, NewAccount, NewAccountRequest,
    RegistrationRequest,
};
use crate::{Identity, IdentityError, Tokens};

pub fn router(identity: Identity) -> Router {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/token", post(token))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/admin/users", get(list).post(create))
        .route("/api/v1/admin/users/{id}", get(show).patch(change))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(identity)
}

/// Identity's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(register, token, refresh, logout, me, list, create, show, change, jwks),
    components(schemas(
        Account,
        agora_platform::auth::Role,
        AccountPage,
        RegistrationRequest,
        NewAccountRequest,
        Credentials,
        RefreshRequest,
        AccountChange,
        Tokens,
        agora_platform::auth::JwkSet,
        agora_platform::auth::Jwk
    ))
)]
pub struct ApiDoc;

/// Registers a customer: the account's id is its customer id; 409 when the
/// email has an account, 422 for a `role` (an admin gives roles: the body
/// has no such field). Public.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "identity",
    request_body = RegistrationRequest,
    responses(
        (status = 201, description = "Registered: a customer account; `Location` is `/api/v1/me`", body = Account,
            headers(("location" = String, description = "`/api/v1/me`: where the account is read once signed in"))),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn register(
    State(identity): State<Identity>,
    Json(req): Json<RegistrationRequest>,
) -> Result<Response, ApiError> {
    let account = identity
        .create_account(&NewAccount::parse(&req.into())?)
        .await?;
    Ok(created(account, "/api/v1/me".into()))
}

fn created(account: Account, location: String) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(account),
    )
        .into_response()
}

/// Tokens are credentials: no cache keeps them.
fn tokens(tokens: Tokens) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(tokens)).into_response()
}

/// Signs in: an access token and a refresh token. Public.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "identity",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = Tokens,
            headers(("cache-control" = String, description = "`no-store`: tokens are credentials"))),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, description = "Wrong email or password, or a disabled account: one answer for all three", body = agora_platform::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, response = agora_platform::openapi::Invalid),
        (status = 429, description = "Too many failed sign-ins for this account or from this client", body = agora_platform::openapi::Problem, content_type = "application/problem+json",
            headers(("retry-after" = u32, description = "Seconds until the failed-attempt window has passed"))),
    ))]
async fn token(
    State(identity): State<Identity>,
    client: Client,
    Json(req): Json<Credentials>,
) -> Result<Response, ApiError> {
    let issued = identity
        .sign_in(&req.email, &req.password, &client.key())
        .await?;
    Ok(tokens(issued))
}

/// A refresh token, to trade for new tokens or to end its session.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "q0b7mJ4yXxQe2c6v9ZkR1sTnLw8uP3aHdGfE5iYoBjM"}))]
struct RefreshRequest {
    /// The `refresh_token` of the last sign-in or refresh.
    refresh_token: String,
}

/// Trades a refresh token for new tokens; each refresh token is good once
/// (one used twice revokes its whole session). Public.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens (the refresh token is the next of its session)", body = Tokens,
            headers(("cache-control" = String, description = "`no-store`: tokens are credentials"))),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, description = "The refresh token is unknown, used, revoked or expired (or its account disabled): sign in again", body = agora_platform::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn refresh(
    State(identity): State<Identity>,
    Json(req): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    Ok(tokens(identity.refresh(&req.refresh_token).await?))
}

/// Ends the session a refresh token belongs to. An unknown token ends
/// nothing and is no error. Public.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn logout(
    State(identity): State<Identity>,
    Json(req): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    identity.sign_out(&req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account: its `id` is its customer id.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, description = "The caller's account", body = Account),
        (status = 401, response = agora_platform::openapi::Unauthorized),
    ))]
async fn me(
    State(identity): State<Identity>,
    Signed(caller): Signed,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(identity.account(caller.id).await?))
}

/// A page of accounts, in creation order.
#[derive(Serialize, utoipa::ToSchema)]
struct AccountPage {
    items: Vec<Account>,
    limit: i64,
    offset: i64,
    /// The cursor of the next page (`after=`), when this one is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    next: Option<Uuid>,
}

/// Every account, in creation order (admins).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "identity",
    params(
        ("limit" = Option<i64>, Query, description = "Accounts per page: 1 to 500 (50 unless told)"),
        ("offset" = Option<i64>, Query, maximum = 10000, description = "Accounts to skip: at most 10,000 (deeper pages are read with `after`)"),
        ("after" = Option<Uuid>, Query, description = "The last account id of the previous page (its `next`): the page holds the ones after it"),
    ),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "A page of accounts", body = AccountPage),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
    ))]
async fn list(
    State(identity): State<Identity>,
    _: Admin,
    Query(params): Query<PageParams>,
) -> Result<Json<AccountPage>, ApiError> {
    let page = params.page(50)?;
    let items = identity.accounts(&page).await?;
    let next = (items.len() as i64 == page.limit)
        .then(|| items.last().map(|a| a.id))
        .flatten();
    Ok(Json(AccountPage {
        items,
        limit: page.limit,
        offset: page.offset,
        next,
    }))
}

/// Creates an account of any role (admins); 409 when the email has one.
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "identity",
    request_body = NewAccountRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created; `Location` names it", body = Account,
            headers(("location" = String, description = "The new account's URL"))),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn create(
    State(identity): State<Identity>,
    _: Admin,
    Json(req): Json<NewAccountRequest>,
) -> Result<Response, ApiError> {
    let account = identity.create_account(&NewAccount::parse(&req)?).await?;
    let location = format!("/api/v1/admin/users/{}", account.id);
    Ok(created(account, location))
}

/// One account (admins).
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "identity",
    params(("id" = Uuid, Path, description = "The account's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 404, response = agora_platform::openapi::NotFound),
    ))]
async fn show(
    State(identity): State<Identity>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Account>, ApiError> {
    let id = parse_id(&id, "account id")?;
    Ok(Json(identity.account(id).await?))
}

/// Changes an account's role or disables it (admins); either ends its
/// sessions. An admin cannot disable or demote itself.
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "identity",
    params(("id" = Uuid, Path, description = "The account's id")),
    request_body = AccountChange,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The account, changed", body = Account),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 404, response = agora_platform::openapi::NotFound),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn change(
    State(identity): State<Identity>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Json(req): Json<AccountChange>,
) -> Result<Json<Account>, ApiError> {
    let id = parse_id(&id, "account id")?;
    let role = req
        .role
        .as_deref()
        .map(parse_role)
        .transpose()
        .map_err(|message| ApiError::invalid_field("role", message))?;
    if id == admin.id && (req.disabled == Some(true) || role.is_some_and(|r| r != admin.role)) {
        return Err(ApiError::conflict(
            "an admin cannot disable or demote itself; ask another admin",
        ));
    }
    Ok(Json(identity.change(id, role, req.disabled).await?))
}

/// The public keys access tokens are verified with (RFC 7517 JWK set,
/// Ed25519): the current signing key and those it replaced less than a
/// token's life ago. Public.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "identity",
    responses(
        (status = 200, description = "The JWK set", body = agora_platform::auth::JwkSet,
            headers(("cache-control" = String, description = "`max-age=60`"))),
    ))]
async fn jwks(State(identity): State<Identity>) -> Result<Response, ApiError> {
    let set: JwkSet = identity.jwks().await?;
    Ok(([(header::CACHE_CONTROL, "max-age=60")], Json(set)).into_response())
}

/// Use-case errors as answers: the one place identity's refusals become
/// statuses.
impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Invalid(invalid) => invalid.into(),
            IdentityError::EmailTaken => ApiError::conflict(e.to_string()),
            IdentityError::BadCredentials | IdentityError::BadRefreshToken => {
                ApiError::invalid_token(e.to_string())
            }
            IdentityError::TooManyAttempts(wait) => {
                let secs = wait.as_secs_f64().ceil() as u32;
                ApiError::too_many_requests(e.to_string(), secs)
            }
            IdentityError::NoAccount(_) => ApiError::not_found(e.to_string()),
            IdentityError::Storage(e) => e.into(),
            IdentityError::Internal(e) => ApiError::internal(e),
        }
    }
}
