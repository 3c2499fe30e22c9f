//! Who is calling: access tokens verified in every process, the roles they
//! carry, and the extractors that demand a role.
//!
//! The identity service signs short-lived JWTs with an Ed25519 key (a `kid`
//! per key) and publishes the public keys as a JWK set. Every process (the
//! embedded app, each `agora service`, the gateway) verifies tokens itself
//! with a [`Verifier`] over a [`KeySource`]: the identity storage in the
//! process that holds it, `/.well-known/jwks.json` elsewhere. No secret is
//! shared between services, so a service reached on its own port is as
//! protected as the gateway.
//!
//! [`authenticate`] is the one layer that reads `Authorization: Bearer`: a
//! valid token puts its [`Account`] into the request, no token leaves the
//! caller anonymous, and a bad one (expired, tampered, unknown key, any
//! algorithm but EdDSA, `alg: none`) is a 401 whatever the route. Routes
//! then ask for what they need in their signature ([`Caller`], [`Signed`],
//! [`Operator`], [`Admin`]): anonymous where a role is needed is a 401 with
//! `WWW-Authenticate: Bearer`, a role too low a 403.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::ApiError;

/// Who issues the tokens and for whom (`iss`, `aud`).
pub const ISSUER: &str = "agora";
pub const AUDIENCE: &str = "agora";
/// Clock skew tolerated between the process that signed and the one that
/// verifies, on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;
/// How often at most an unknown `kid` makes the verifier fetch the key set
/// again: a new key is picked up at once, and forged kids cannot make every
/// request a fetch.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
/// Tokens whose verification is remembered: a client sends one token with
/// many requests, and checking an Ed25519 signature costs tens of
/// microseconds of CPU each time (8 % of the embedded app's at full load).
const VERIFIED_TOKENS: usize = 10_000;

/// What an account may do. Each role may do what the ones before it may
/// (customer < operator < admin).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Shops: its own cart, orders, payments, shipments and notifications.
    Customer,
    /// Every order, reservation, payment, shipment and notification, the
    /// dead letters, the queues, the saga's repairs.
    Operator,
    /// An operator who also manages the catalog, stock and accounts.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Customer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The account's id (for a customer, the customer id).
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The token's own id, for the logs.
    pub jti: String,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: Uuid,
    pub role: Role,
}

impl Account {
    /// The customer id of what it buys: the account's id.
    pub fn customer_id(&self) -> String {
        self.id.to_string()
    }

    /// Whether it sees and acts on everyone's orders (operators, admins).
    pub fn sees_everything(&self) -> bool {
        self.role >= Role::Operator
    }

    /// What of a listing it may see: everything, or only its own.
    pub fn scope(&self) -> Scope {
        if self.sees_everything() {
            Scope::Everything
        } else {
            Scope::Customer(self.customer_id())
        }
    }

    /// Whether it may see something that belongs to `customer_id`: its own,
    /// or anyone's for operators. What it may not see answers 404, so that
    /// ids cannot be probed.
    pub fn may_see(&self, customer_id: &str) -> bool {
        self.sees_everything() || self.customer_id() == customer_id
    }
}

/// The part of a listing a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Everything,
    /// Only what belongs to this customer id.
    Customer(String),
}

impl Scope {
    /// The customer id to filter on, if any.
    pub fn customer(&self) -> Option<&str> {
        match self {
            Scope::Everything => None,
            Scope::Customer(id) => Some(id),
        }
    }
}

/// A public key as the JWK set publishes it (RFC 8037: `OKP`, `Ed25519`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The key's RFC 7638 thumbprint: the `kid` of the tokens it signed.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
    #[schema(example = "EdDSA")]
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub usage: String,
}

impl Jwk {
    /// The JWK of an Ed25519 public key `x` (base64url).
    pub fn ed25519(kid: impl Into<String>, x: impl Into<String>) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: kid.into(),
            x: x.into(),
            alg: "EdDSA".into(),
            usage: "sig".into(),
        }
    }
}

/// `GET /.well-known/jwks.json`: the public keys access tokens are
/// verified with (RFC 7517).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// Where a verifier finds the public keys that may sign tokens now.
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn keys(&self) -> Result<JwkSet, String>;
}

/// The key set over HTTP (`{base}/.well-known/jwks.json`), for a process
/// that does not hold the identity storage.
pub struct HttpKeys {
    client: reqwest::Client,
    url: String,
}

impl HttpKeys {
    pub fn new(base_url: &str) -> HttpKeys {
        HttpKeys {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client builds"),
            url: format!("{}/.well-known/jwks.json", base_url.trim_end_matches('/')),
        }
    }
}

#[async_trait]
impl KeySource for HttpKeys {
    async fn keys(&self) -> Result<JwkSet, String> {
        let fetch = async {
            self.client
                .get(&self.url)
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        };
        fetch
            .await
            .map_err(|e| format!("cannot fetch {}: {e}", self.url))
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token this system signed, or no longer valid: 401.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Signed by a key the verifier cannot fetch now: 503, worth a retry.
    #[error("cannot verify the token now: {0}")]
    Unverifiable(String),
}

/// Verifies access tokens against the keys of a [`KeySource`], kept in
/// memory: a key is fetched once, and an unknown `kid` fetches the set again
/// (at most every few seconds).
pub struct Verifier {
    source: Arc<dyn KeySource>,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    /// When the set was last fetched; held across a fetch, so that callers
    /// waiting for the same new key share one.
    fetched: tokio::sync::Mutex<Option<Instant>>,
    validation: Validation,
    /// Tokens verified already, with the account and expiry they stand
    /// for. What a token says cannot change, and a hit still honours `exp`.
    verified: crate::memo::Memo<String, (Account, i64)>,
}

impl Verifier {
    pub fn new(source: Arc<dyn KeySource>) -> Verifier {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Verifier {
            source,
            keys: RwLock::new(HashMap::new()),
            fetched: tokio::sync::Mutex::new(None),
            validation,
            verified: crate::memo::Memo::new(VERIFIED_TOKENS),
        }
    }

    /// The account a token stands for, if one of the keys signed it and it
    /// is valid now.
    pub async fn verify(&self, token: &str) -> Result<Account, TokenError> {
        if let Some((account, exp)) = self.verified.get(token) {
            if crate::clock::now_secs() <= exp + LEEWAY_SECS as i64 {
                return Ok(account);
            }
            return Err(TokenError::Invalid("the token has expired".into()));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("the token names no key (kid)".into()))?;
        let key = self
            .key(&kid)
            .await?
            .ok_or_else(|| TokenError::Invalid(format!("unknown key {kid}")))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let id = Uuid::parse_str(&data.claims.sub)
            .map_err(|_| TokenError::Invalid("the subject is not an account id".into()))?;
        let account = Account {
            id,
            role: data.claims.role,
        };
        self.verified
            .remember([(token.to_owned(), (account.clone(), data.claims.exp))]);
        Ok(account)
    }

    async fn key(&self, kid: &str) -> Result<Option<Arc<DecodingKey>>, TokenError> {
        if let Some(key) = self.known(kid) {
            return Ok(Some(key));
        }
        let mut fetched = self.fetched.lock().await;
        if let Some(key) = self.known(kid) {
            return Ok(Some(key));
        }
        if fetched.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
            return Ok(None);
        }
        let set = self.source.keys().await.map_err(TokenError::Unverifiable)?;
        *fetched = Some(Instant::now());
        let mut keys = self.keys.write().expect("verifier keys lock");
        for jwk in set.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                continue;
            }
            match DecodingKey::from_ed_components(&jwk.x) {
                Ok(key) => {
                    keys.insert(jwk.kid, Arc::new(key));
                }
                Err(e) => {
                    tracing::warn!(kid = %jwk.kid, error = %e, "a published key does not parse")
                }
            }
        }
        Ok(keys.get(kid).cloned())
    }

    fn known(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys
            .read()
            .expect("verifier keys lock")
            .get(kid)
            .cloned()
    }
}

/// Who is calling, as [`authenticate`] found out: an account, or nobody.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Caller {
    #[default]
    Anonymous,
    Signed(Account),
}

impl Caller {
    pub fn account(&self) -> Option<&Account> {
        match self {
            Caller::Anonymous => None,
            Caller::Signed(account) => Some(account),
        }
    }

    /// The account, or a 401 asking for a token.
    pub fn signed(self) -> Result<Account, ApiError> {
        match self {
            Caller::Signed(account) => Ok(account),
            Caller::Anonymous => Err(ApiError::unauthorized("sign in: this needs a bearer token")),
        }
    }

    /// The account if it holds `role` (or a higher one): else 401 when
    /// anonymous, 403 when signed in with too low a role.
    pub fn with_role(self, role: Role) -> Result<Account, ApiError> {
        let account = self.signed()?;
        if account.role >= role {
            Ok(account)
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }
}

/// The layer in front of every route of a process: verifies the bearer
/// token, if any, and leaves the [`Caller`] in the request.
pub async fn authenticate(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match bearer(request.headers()) {
        Ok(None) => Caller::Anonymous,
        Ok(Some(token)) => match verifier.verify(token).await {
            Ok(account) => Caller::Signed(account),
            Err(TokenError::Invalid(why)) => {
                tracing::info!(reason = %why, "refused a bearer token");
                return ApiError::invalid_token("the bearer token is invalid or has expired")
                    .into_response();
            }
            Err(e @ TokenError::Unverifiable(_)) => {
                tracing::warn!(error = %e, "cannot verify a bearer token");
                return ApiError::unavailable("tokens cannot be verified now; try again")
                    .into_response();
            }
        },
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The token of `Authorization: Bearer <token>`; another scheme is a 401.
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("the Authorization header is not text"))?;
    bearer_of(value).map(Some)
}

/// The token of an `Authorization` value (`Bearer <token>`), wherever it
/// came from: a header, or a WebSocket's first message.
pub fn bearer_of(value: &str) -> Result<&str, ApiError> {
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(ApiError::invalid_token(
            "expected Authorization: Bearer <token>",
        )),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    /// Anonymous unless [`authenticate`] verified a token.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Extractors that demand a signed-in caller of at least a role.
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Account);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let Ok(caller) = Caller::from_request_parts(parts, state).await;
                caller.with_role($role).map($name)
            }
        }
    };
}

role_extractor!(
    /// Any signed-in account (a customer acts on its own things).
    Signed,
    Role::Customer
);
role_extractor!(
    /// An operator or an admin.
    Operator,
    Role::Operator
);
role_extractor!(
    /// An admin.
    Admin,
    Role::Admin
);

#[cfg(test)]
mod tests {
    use super::*;

    fn account(role: Role) -> Account {
        Account {
            id: Uuid::now_v7(),
            role,
        }
    }

    #[test]
    fn each_role_may_do_what_the_ones_below_it_may() {
        let cases = [
            (Role::Customer, Role::Customer, true),
            (Role::Customer, Role::Operator, false),
            (Role::Customer, Role::Admin, false),
            (Role::Operator, Role::Customer, true),
            (Role::Operator, Role::Operator, true),
            (Role::Operator, Role::Admin, false),
            (Role::Admin, Role::Admin, true),
        ];
        for (has, needs, allowed) in cases {
            let answer = Caller::Signed(account(has)).with_role(needs);
            assert_eq!(answer.is_ok(), allowed, "{has:?} asking for {needs:?}");
            if let Err(e) = answer {
                assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
            }
        }
        let anonymous = Caller::Anonymous.with_role(Role::Customer).unwrap_err();
        assert_eq!(anonymous.status, axum::http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_customer_sees_only_its_own_and_operators_everything() {
        let customer = account(Role::Customer);
        assert!(customer.may_see(&customer.customer_id()));
        assert!(!customer.may_see(&Uuid::now_v7().to_string()));
        assert_eq!(customer.scope().customer(), Some(&*customer.customer_id()));
        let operator = account(Role::Operator);
        assert!(operator.may_see(&customer.customer_id()));
        assert_eq!(operator.scope(), Scope::Everything);
    }

    #[test]
    fn roles_read_back_from_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn only_the_bearer_scheme_is_read() {
        let mut headers = axum::http::HeaderMap::new();
        assert!(matches!(bearer(&headers), Ok(None)));
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers).unwrap(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic YTpi".parse().unwrap());
        assert_eq!(
            bearer(&headers).unwrap_err().status,
            axum::http::StatusCode::UNAUTHORIZED
        );
    }
}
