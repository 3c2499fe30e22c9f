//! HTTP plumbing shared by every service API: one error type rendered as
//! RFC 9457 problem+json, a JSON extractor whose rejections are problems too,
//! and id parsing that answers 400 rather than 500.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{DbError, Fault};

/// The largest request body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use crate::validate::{FieldError, Invalid};

/// The one error type of every HTTP boundary.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 503s
    /// and 429s.
    pub retry_after: Option<u32>,
    /// How to authenticate (`WWW-Authenticate`), for 401s.
    pub challenge: Option<&'static str>,
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
            challenge: None,
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
    /// 409 naming what, in the state of a resource, stands in the way
    /// (a cart's lines, a product's stock): a valid request, refused for
    /// now.
    pub fn conflicting(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError {
            errors,
            ..Self::conflict(detail)
        }
    }
    /// 503: something this request needs does not answer now; the client
    /// may retry after a second (`Retry-After`).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
        }
    }
    /// 401: no credentials where some are needed.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self {
            challenge: Some("Bearer"),
            ..Self::new(StatusCode::UNAUTHORIZED, detail)
        }
    }
    /// 401: credentials given, and refused (RFC 6750's `invalid_token`).
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self {
            challenge: Some("Bearer error=\"invalid_token\""),
            ..Self::new(StatusCode::UNAUTHORIZED, detail)
        }
    }
    /// 403: signed in, without the role this needs.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    /// 429: too many attempts; the next may come after `retry_after` seconds.
    pub fn too_many_requests(detail: impl Into<String>, retry_after: u32) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, detail)
        }
    }
    /// 422 naming each field that is wrong.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: "the request has invalid fields".into(),
            errors,
            retry_after: None,
            challenge: None,
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

/// Input a use case refused, field by field: 422.
impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::invalid(invalid.0)
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
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// JSON body extractor whose rejections are problem+json: malformed JSON
/// 400, wrong content type 415, a field of the wrong type, missing or
/// unknown 422 naming the field, too large 413. A number without a
/// fraction (`3.0`) is an integer, as JSON Schema (and so the API's
/// document) has it: it is read where an integer is expected.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/json",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(rejection.body_text())
            }
        })?;
        from_json(&body).map(Json)
    }
}

/// `application/json`, or any `application/…+json`, as axum's own
/// extractor accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, subtype)) => {
            kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
        }
        None => false,
    }
}

/// `body` as a `T`. A body that does not fit `T` is read once more with
/// its integral floats as integers (`-1.0` as `-1`), if it has any: only
/// then, so that every other answer (and its error's position) is serde's.
fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match axum::Json::<T>::from_bytes(body) {
        Ok(axum::Json(value)) => Ok(value),
        Err(rejection) => {
            if let JsonRejection::JsonDataError(_) = rejection {
                let retried = integral_floats_as_integers(body)
                    .and_then(|value| serde_json::from_value::<T>(value).ok());
                if let Some(value) = retried {
                    return Ok(value);
                }
            }
            Err(json_rejection(rejection))
        }
    }
}

/// The body with each float that has no fraction (and fits an `i64`) as
/// an integer; `None` when it has none.
fn integral_floats_as_integers(body: &[u8]) -> Option<serde_json::Value> {
    fn integral(value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::Number(n) => match n.as_f64() {
                // 2^63 is exact as an f64: the range is [-2^63, 2^63).
                Some(f)
                    if n.is_f64()
                        && f.fract() == 0.0
                        && (i64::MIN as f64..-(i64::MIN as f64)).contains(&f) =>
                {
                    *value = Value::from(f as i64);
                    true
                }
                _ => false,
            },
            Value::Array(items) => items.iter_mut().fold(false, |any, v| integral(v) | any),
            Value::Object(fields) => fields.values_mut().fold(false, |any, v| integral(v) | any),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    integral(&mut value).then_some(value)
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
            // An unknown field is named (the path names it already when
            // serde knows where it is).
            let path = match unknown_field(message) {
                Some(field) if path == "body" => field,
                _ => path,
            };
            ApiError::invalid(vec![FieldError::new(path, message)])
        }
        _ => ApiError::bad_request(format!("malformed JSON: {text}")),
    }
}

/// "unknown field `role`, expected one of …" -> "role".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
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

/// The most ids one `?ids=` may name.
pub const MAX_IDS: usize = MAX_PAGE as usize;

/// A comma-separated list of ids (`?ids=a,b,c`; empty: none), at most
/// [`MAX_IDS`] of them, each a UUID written with its four hyphens or
/// without any (32 hex digits): what the document's pattern for `ids`
/// says, else 400.
pub fn parse_ids(raw: &str) -> Result<Vec<Uuid>, ApiError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = raw.split(',').collect();
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!(
            "ids may name at most {MAX_IDS} ids"
        )));
    }
    ids.into_iter()
        .map(|id| match id.len() {
            // Hyphenated or simple; not braced, nor a URN.
            36 | 32 => parse_id(id, "id"),
            _ => Err(ApiError::bad_request(format!("id `{id}` is not a UUID"))),
        })
        .collect()
}

/// The answer for routes that do not exist.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("no such resource")
}

/// The most items one page holds.
pub const MAX_PAGE: i64 = 500;
/// The deepest `offset` a list accepts: a deeper page is read with `after`
/// (a cursor), whose cost does not grow with the depth.
pub const MAX_OFFSET: i64 = 10_000;

/// Paging parameters shared by list endpoints, as sent: `limit` (1 to
/// 500), then either `offset` (at most 10,000) or `after`, the key of the
/// last item of the previous page (a cursor: the next page holds what
/// comes after it in the list's order).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageParams {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub after: Option<String>,
}

/// A checked page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
    pub after: Option<Uuid>,
}

impl PageParams {
    /// The page asked for, `default_limit` items long unless told; a limit
    /// out of bounds is brought within them, an offset beyond
    /// [`MAX_OFFSET`] or a malformed cursor is a 400.
    pub fn page(&self, default_limit: i64) -> Result<Page, ApiError> {
        let offset = self.offset.unwrap_or(0).max(0);
        if offset > MAX_OFFSET {
            return Err(ApiError::bad_request(format!(
                "offset must be at most {MAX_OFFSET}; read deeper pages with after=<the last key of the previous page>"
            )));
        }
        Ok(Page {
            limit: self.limit.unwrap_or(default_limit).clamp(1, MAX_PAGE),
            offset,
            after: self
                .after
                .as_deref()
                .map(|raw| parse_id(raw, "after"))
                .transpose()?,
        })
    }
}

impl Page {
    /// `after`, `limit` and `offset` as statement parameters, in that
    /// order (a query reads `($n IS NULL OR key > $n)`, or `<` when its
    /// list runs newest first, then `LIMIT $n+1 OFFSET $n+2`).
    pub fn params(&self) -> [crate::db::Value; 3] {
        [
            self.after.map(|key| key.to_string()).into(),
            self.limit.into(),
            self.offset.into(),
        ]
    }
}

/// `?order_id=…` on the list endpoints of payment, shipping and
/// notification, with the paging parameters (spelled out: query strings
/// and `#[serde(flatten)]` do not mix).
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only those of this order.
    #[param(value_type = Option<Uuid>)]
    pub order_id: Option<String>,
    /// Items per page: 1 to 500 (100 by default; out of bounds is brought within).
    pub limit: Option<i64>,
    /// Items to skip: at most 10,000 (deeper pages are read with `after`).
    #[param(maximum = 10000)]
    pub offset: Option<i64>,
    /// The id of the last item of the previous page: the items after it.
    #[param(value_type = Option<Uuid>)]
    pub after: Option<String>,
}

impl OrderFilter {
    /// The order id, if given and well-formed, and the page (100 items).
    pub fn parse(&self) -> Result<(Option<Uuid>, Page), ApiError> {
        let order_id = self
            .order_id
            .as_deref()
            .map(|raw| parse_id(raw, "order_id"))
            .transpose()?;
        let page = PageParams {
            limit: self.limit,
            offset: self.offset,
            after: self.after.clone(),
        }
        .page(100)?;
        Ok((order_id, page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Line {
        quantity: i64,
        #[serde(default)]
        weights: Vec<i64>,
    }

    #[test]
    fn an_integral_float_is_an_integer() {
        let line: Line = from_json(br#"{"quantity": -1.0, "weights": [2.0, 3]}"#).unwrap();
        assert_eq!(
            line,
            Line {
                quantity: -1,
                weights: vec![2, 3]
            }
        );
        let fraction = from_json::<Line>(br#"{"quantity": 1.5}"#).unwrap_err();
        assert_eq!(fraction.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(fraction.errors[0].field, "quantity");
        let huge = from_json::<Line>(br#"{"quantity": 1e19}"#).unwrap_err();
        assert_eq!(huge.errors[0].field, "quantity");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let unknown = from_json::<Line>(br#"{"quantity": 1, "role": "admin"}"#).unwrap_err();
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(unknown.errors[0].field, "role");
    }

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
    fn pages_are_bounded_and_deep_pages_need_a_cursor() {
        let params = |limit, offset, after: Option<&str>| PageParams {
            limit,
            offset,
            after: after.map(str::to_owned),
        };
        let page = params(Some(10_000), Some(-5), None).page(50).unwrap();
        assert_eq!((page.limit, page.offset), (MAX_PAGE, 0));
        assert_eq!(params(None, None, None).page(50).unwrap().limit, 50);
        assert_eq!(
            params(None, Some(MAX_OFFSET + 1), None)
                .page(50)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert!(params(None, None, Some("nope")).page(50).is_err());
        let key = Uuid::now_v7();
        assert_eq!(
            params(None, None, Some(&key.to_string()))
                .page(50)
                .unwrap()
                .after,
            Some(key)
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
