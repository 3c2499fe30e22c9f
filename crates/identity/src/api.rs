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

/// Registers a customer: the account's id is its customer id.
async fn register(
    State(identity): State<Identity>,
    Json(mut req): Json<NewAccountRequest>,
) -> Result<Response, ApiError> {
    if req.role.take().is_some() {
        return Err(ApiError::invalid_field(
            "role",
            "is given by an admin, not chosen at registration",
        ));
    }
    let account = identity.create_account(&NewAccount::parse(&req)?).await?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(identity): State<Identity>,
    Json(req): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    Ok(tokens(identity.refresh(&req.refresh_token).await?))
}

async fn logout(
    State(identity): State<Identity>,
    Json(req): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    identity.sign_out(&req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(
    State(identity): State<Identity>,
    Signed(caller): Signed,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(identity.account(caller.id).await?))
}

#[derive(Serialize)]
struct AccountPage {
    items: Vec<Account>,
    limit: i64,
    offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Uuid>,
}

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

async fn create(
    State(identity): State<Identity>,
    _: Admin,
    Json(req): Json<NewAccountRequest>,
) -> Result<Response, ApiError> {
    let account = identity.create_account(&NewAccount::parse(&req)?).await?;
    let location = format!("/api/v1/admin/users/{}", account.id);
    Ok(created(account, location))
}

async fn show(
    State(identity): State<Identity>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Account>, ApiError> {
    let id = parse_id(&id, "account id")?;
    Ok(Json(identity.account(id).await?))
}

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
