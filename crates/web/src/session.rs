//! A visitor's session: the API's own tokens, kept in `HttpOnly` cookies
//! (`SameSite=Lax`; `Secure` when the request came over TLS, as a TLS proxy
//! says with `X-Forwarded-Proto: https`), refreshed when the access token
//! has run out; and the CSRF token every form that changes something
//! carries (a random value in a `SameSite=Strict` cookie, repeated in the
//! form: a page of another site can send the cookie with a form, but
//! cannot read it to fill the field).

use agora_platform::auth::Role;
use agora_platform::clock::now_secs;
use agora_platform::server::Client as Peer;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::Markup;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::Web;
use agora_platform::client::Caller;

const ACCESS: &str = "agora_access";
const REFRESH: &str = "agora_refresh";
const CSRF: &str = "agora_csrf";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
/// How long a refresh cookie is kept: the identity service decides how
/// long the token inside is good for.
const REFRESH_COOKIE_SECS: i64 = 30 * 24 * 3600;

/// Who the token says the visitor is (read for the page only: the API
/// verifies the token on every call).
#[derive(Debug, Clone, Deserialize)]
pub struct Who {
    pub role: Role,
    exp: i64,
}

/// One request's visitor: its session, and the cookies to set on the answer.
pub struct Visitor {
    pub who: Option<Who>,
    pub csrf: String,
    pub api: Caller,
    refresh: Option<String>,
    set_cookies: Vec<String>,
    secure: bool,
}

impl Visitor {
    pub fn is_operator(&self) -> bool {
        self.who.as_ref().is_some_and(|w| w.role >= Role::Operator)
    }

    pub fn is_admin(&self) -> bool {
        self.who.as_ref().is_some_and(|w| w.role >= Role::Admin)
    }

    /// Keeps the tokens of a sign-in (or a refresh) in the cookies.
    pub fn signed_in(&mut self, tokens: &Value) {
        let (Some(access), Some(refresh)) = (
            tokens["access_token"].as_str(),
            tokens["refresh_token"].as_str(),
        ) else {
            return;
        };
        let lifetime = tokens["expires_in"].as_i64().unwrap_or(900);
        self.set_cookie(ACCESS, access, lifetime, "Lax");
        self.set_cookie(REFRESH, refresh, REFRESH_COOKIE_SECS, "Lax");
        self.who = decode(access);
        self.api.token = Some(access.to_owned());
        self.refresh = Some(refresh.to_owned());
    }

    /// Ends the session: the refresh token is revoked, the cookies cleared.
    pub async fn sign_out(&mut self) {
        if let Some(refresh) = self.refresh.take() {
            self.api
                .post("/api/v1/auth/logout", &json!({ "refresh_token": refresh }))
                .await;
        }
        self.clear();
    }

    fn clear(&mut self) {
        self.set_cookie(ACCESS, "", 0, "Lax");
        self.set_cookie(REFRESH, "", 0, "Lax");
        self.who = None;
        self.api.token = None;
    }

    fn set_cookie(&mut self, name: &str, value: &str, max_age: i64, same_site: &str) {
        let secure = if self.secure { "; Secure" } else { "" };
        self.set_cookies.push(format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        ));
    }

    /// A page, with the cookies this request set.
    pub fn page(self, status: StatusCode, markup: Markup) -> Response {
        let mut response = (status, axum::response::Html(markup.into_string())).into_response();
        self.put_cookies(response.headers_mut());
        response
    }

    /// `303 See Other` to `to` (after a form), with the cookies.
    pub fn redirect(self, to: &str) -> Response {
        let mut response = Redirect::to(to).into_response();
        self.put_cookies(response.headers_mut());
        response
    }

    fn put_cookies(&self, headers: &mut HeaderMap) {
        for cookie in &self.set_cookies {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }
}

impl FromRequestParts<Web> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let cookies = Cookies::of(&parts.headers);
        let secure = parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        let peer = parts.extensions.get::<Peer>().copied();
        let access = cookies.get(ACCESS).map(str::to_owned);
        let who = access.as_deref().and_then(decode);
        let mut visitor = Visitor {
            who: None,
            csrf: String::new(),
            api: web.api.as_visitor(None, peer),
            refresh: cookies.get(REFRESH).map(str::to_owned),
            set_cookies: Vec::new(),
            secure,
        };
        match cookies.get(CSRF) {
            Some(token) if token.len() == 43 => visitor.csrf = token.to_owned(),
            _ => {
                visitor.csrf = random_token();
                let csrf = visitor.csrf.clone();
                visitor.set_cookie(CSRF, &csrf, 12 * 3600, "Strict");
            }
        }
        // Refreshed a little before it runs out, so that it still holds for
        // the calls this request makes.
        match who {
            Some(w) if w.exp > now_secs() + 10 => {
                visitor.who = Some(w);
                visitor.api.token = access;
            }
            _ => {
                if let Some(refresh) = visitor.refresh.clone() {
                    let answer = visitor
                        .api
                        .post("/api/v1/auth/refresh", &json!({ "refresh_token": refresh }))
                        .await;
                    match answer.ok() {
                        true => visitor.signed_in(&answer.body),
                        false => visitor.clear(),
                    }
                }
            }
        }
        Ok(visitor)
    }
}

/// The token's claims, unverified: enough to draw the page for the role.
fn decode(token: &str) -> Option<Who> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Cookies<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Cookies<'a> {
    fn of(headers: &'a HeaderMap) -> Cookies<'a> {
        Cookies(
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// The form of a button that carries only its CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

/// A form that changes something: its fields, once its CSRF token matched
/// the visitor's cookie. Anything else is refused with a 403 and changes
/// nothing.
pub struct Form<T>(pub T);

/// The largest form accepted.
const MAX_FORM: usize = 64 * 1024;

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<Web> for Form<T> {
    type Rejection = Response;

    async fn from_request(request: Request, _: &Web) -> Result<Self, Response> {
        let cookie = Cookies::of(request.headers()).get(CSRF).map(str::to_owned);
        let bytes = axum::body::to_bytes(request.into_body(), MAX_FORM)
            .await
            .map_err(|_| refused(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        let sent = serde_urlencoded::from_bytes::<CsrfOnly>(&bytes)
            .ok()
            .and_then(|f| f.csrf);
        let matches = match (cookie, sent) {
            (Some(cookie), Some(sent)) => same(cookie.as_bytes(), sent.as_bytes()),
            _ => false,
        };
        if !matches {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "This form was not sent from a page of this site, or it has expired (its CSRF token does not match). Go back, reload the page and try again.",
            ));
        }
        serde_urlencoded::from_bytes(&bytes).map(Form).map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                &format!("The form is malformed: {e}."),
            )
        })
    }
}

/// Compares in time independent of where the two differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        axum::response::Html(crate::view::bare_page("Refused", why).into_string()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name_from_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; agora_csrf=x"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("agora_access=t.o.k"),
        );
        let cookies = Cookies::of(&headers);
        assert_eq!(cookies.get(CSRF), Some("x"));
        assert_eq!(cookies.get(ACCESS), Some("t.o.k"));
        assert_eq!(cookies.get("b"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert_eq!(random_token().len(), 43);
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn a_token_that_is_not_a_jwt_is_no_one() {
        assert!(decode("garbage").is_none());
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"s","role":"operator","exp":5}"#);
        let who = decode(&format!("h.{payload}.sig")).unwrap();
        assert_eq!((who.role, who.exp), (Role::Operator, 5));
    }
}
