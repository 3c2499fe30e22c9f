//! The public API, called in-process: the web pages and the GraphQL
//! resolvers are made of the same requests any other client sends, with the
//! caller's own token, through the same token verification, roles,
//! ownership and idempotency. Neither surface holds a rule of its own: in
//! the embedded mode the router is the services' own, behind the gateway it
//! is the gateway's proxy, so both modes answer alike.

use crate::idempotency;
use crate::server::Client as Peer;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

/// The API router (with its token verification), called without a socket.
#[derive(Clone)]
pub struct Api {
    router: Router,
}

/// An answer of the API: its status and its JSON body (`Null` if none).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// `Retry-After`, in seconds, when the API said one.
    pub retry_after: Option<u64>,
}

/// The largest answer read (a page of 500 dead letters fits).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

impl Api {
    pub fn new(router: Router) -> Api {
        Api { router }
    }

    /// The API as one visitor: its token (if signed in) and the address it
    /// is counted under (the per-client limits, the failed sign-ins).
    pub fn as_visitor(&self, token: Option<String>, peer: Option<Peer>) -> Caller {
        Caller {
            api: self.clone(),
            token,
            peer,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        caller: &Caller,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = &caller.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(key) = idempotency_key {
            // What no HTTP client could send as a header, the API would
            // refuse as it refuses any malformed key.
            match HeaderValue::from_str(key) {
                Ok(key) => request = request.header("idempotency-key", key),
                Err(_) => return Answer::of(idempotency::malformed_key().into_response()).await,
            }
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = match request.body(body) {
            Ok(request) => request,
            Err(e) => return Answer::failed(&e.to_string()),
        };
        if let Some(peer) = caller.peer {
            request.extensions_mut().insert(peer);
        }
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        Answer::of(response).await
    }
}

impl Answer {
    async fn of(response: Response) -> Answer {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
            Ok(bytes) => bytes,
            Err(e) => return Answer::failed(&e.to_string()),
        };
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            retry_after,
        }
    }
}

/// [`Api`] bound to one visitor.
#[derive(Clone)]
pub struct Caller {
    api: Api,
    pub token: Option<String>,
    peer: Option<Peer>,
}

impl Caller {
    /// The address the caller is counted under.
    pub fn peer(&self) -> Option<Peer> {
        self.peer
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.api.send(Method::GET, path, self, None, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.api
            .send(Method::POST, path, self, Some(body), None)
            .await
    }

    pub async fn post_empty(&self, path: &str) -> Answer {
        self.api.send(Method::POST, path, self, None, None).await
    }

    /// A POST that may be repeated: the API answers a repeat with the same
    /// key and body as it answered the first.
    pub async fn post_once(&self, path: &str, body: &Value, key: Option<&str>) -> Answer {
        self.api
            .send(Method::POST, path, self, Some(body), key)
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.api
            .send(Method::PUT, path, self, Some(body), None)
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.api
            .send(Method::PATCH, path, self, Some(body), None)
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.api.send(Method::DELETE, path, self, None, None).await
    }

    /// The body of a successful GET, or the answer that refused it.
    pub async fn fetch(&self, path: &str) -> Result<Value, Answer> {
        let answer = self.get(path).await;
        match answer.status.is_success() {
            true => Ok(answer.body),
            false => Err(answer),
        }
    }

    /// The items of a list answer (a list, or an object with `items`).
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, Answer> {
        let body = self.fetch(path).await?;
        let items = match body.get("items") {
            Some(items) => items.clone(),
            None => body,
        };
        Ok(items.as_array().cloned().unwrap_or_default())
    }
}

impl Answer {
    fn failed(why: &str) -> Answer {
        tracing::warn!(error = why, "an in-process API call failed");
        Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: serde_json::json!({ "detail": "the request could not be made" }),
            retry_after: None,
        }
    }

    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// What a problem+json answer says, for a person.
    pub fn detail(&self) -> String {
        self.body["detail"]
            .as_str()
            .or_else(|| self.body["title"].as_str())
            .unwrap_or("the request was refused")
            .to_owned()
    }

    /// Why it was refused, for a person: each field's error, or the detail.
    pub fn reasons(&self) -> Vec<String> {
        match self.field_errors() {
            e if e.is_empty() => vec![self.detail()],
            e => e.into_iter().map(|(f, m)| format!("{f}: {m}")).collect(),
        }
    }

    /// The per-field errors of a problem+json answer: (field, message).
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("is invalid").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `text` as one part of a path or a query's value: nothing in it can end
/// the part or start another.
pub fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}
