//! HTTP plumbing shared by every service API: one error type rendered as
//! RFC 9457 problem+json, a JSON extractor whose rejections are problems too,
//! and id parsing that answers 400 rather than 500.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{DbError, Fault};

/// The largest request body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The one error type of every HTTP boundary.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 503s.
    pub retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    /// 503: something this request needs does not answer now; the client
    /// may retry after a second (`Retry-After`).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
        }
    }
    /// 422 naming each field that is wrong.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: "the request has invalid fields".into(),
            errors,
            retry_after: None,
        }
    }
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }
    /// An unexpected failure: logged in full, answered without internals.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<DbError> for ApiError {
    /// Only storage that does not answer is a 503 the client may retry; a
    /// write the data makes impossible is the client's (422) or a conflict
    /// (409), never an outage.
    fn from(e: DbError) -> Self {
        match e.fault() {
            Fault::Unavailable => {
                tracing::warn!(error = %e, "storage error");
                Self::unavailable("storage is unavailable; try again")
            }
            Fault::Conflict => {
                tracing::info!(error = %e, "storage refused a conflicting write");
                Self::conflict("the request conflicts with what is stored")
            }
            Fault::Data => {
                tracing::info!(error = %e, "storage refused the data");
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the request holds a value that cannot be stored",
                )
            }
            Fault::Internal => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        let json = serde_json::to_vec(&body).expect("problems serialise");
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// JSON body extractor whose rejections are problem+json: malformed JSON
/// 400, wrong content type 415, a field of the wrong type or missing 422
/// naming the field, too large 413.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            // axum reports "<prefix>: <path>: <serde message>".
            let detail = text
                .split_once("target type: ")
                .map(|(_, rest)| rest)
                .unwrap_or(&text);
            let (path, message) = match detail.split_once(": ") {
                Some((path, message)) if !path.contains(' ') && path != "." => {
                    (path.to_owned(), message)
                }
                _ => (
                    missing_field(detail).unwrap_or_else(|| "body".into()),
                    detail,
                ),
            };
            ApiError::invalid(vec![FieldError::new(path, message)])
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        _ => ApiError::bad_request(format!("malformed JSON: {text}")),
    }
}

/// "missing field `email` at line 1" -> "email".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.split("missing field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// Query-string extractor whose rejections are problem+json (400).
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// Parses an id from a path or query; malformed ids are a 400, not a 500.
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::bad_request(format!("{what} `{raw}` is not a UUID")))
}

/// The answer for routes that do not exist.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("no such resource")
}

/// Paging parameters shared by list endpoints.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Page {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl Page {
    /// `(limit, offset)` clamped to sane bounds.
    pub fn bounds(&self) -> (i64, i64) {
        (
            self.limit.unwrap_or(50).clamp(1, 500),
            self.offset.unwrap_or(0).max(0),
        )
    }
}

/// `?order_id=…` on the list endpoints of payment, shipping and notification.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct OrderFilter {
    pub order_id: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl OrderFilter {
    /// The order id, if given and well-formed, and clamped `(limit, offset)`.
    pub fn parse(&self) -> Result<(Option<Uuid>, (i64, i64)), ApiError> {
        let order_id = self
            .order_id
            .as_deref()
            .map(|raw| parse_id(raw, "order_id"))
            .transpose()?;
        let page = Page {
            limit: Some(self.limit.unwrap_or(100)),
            offset: self.offset,
        };
        Ok((order_id, page.bounds()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_field_names_the_field() {
        assert_eq!(
            missing_field("missing field `email` at line 1 column 2"),
            Some("email".into())
        );
        assert_eq!(missing_field("something else"), None);
    }

    #[test]
    fn storage_that_does_not_answer_is_a_503_with_retry_after() {
        let down = DbError::Postgres(sqlx::Error::PoolTimedOut);
        let response = ApiError::from(down).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let bug = DbError::Decode("no column 9".into());
        assert_eq!(
            ApiError::from(bug).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn malformed_ids_are_bad_requests() {
        assert_eq!(
            parse_id("nope", "order id").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert!(parse_id(&Uuid::now_v7().to_string(), "order id").is_ok());
    }
}
