//! Idempotency keys for unsafe requests (`Idempotency-Key` header).
//!
//! The key is claimed in the same transaction that performs the request and
//! stores its response, so the effect and the record of it commit together.
//! A concurrent request with the same key waits on the key's row (the unique
//! index on PostgreSQL, the single writer on SQLite) and then replays the
//! stored answer: one key, one effect, whatever the number of clients. The
//! same key with a different body is refused (422). Keys expire after a TTL.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::clock::now_millis;
use crate::db::{Db, Migration, Tx};
use crate::http::ApiError;
use crate::params;

pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "platform_0002_idempotency_keys",
    sql: include_str!("../migrations/platform_0002_idempotency_keys.sql"),
}];

/// How long a key is remembered by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// A response as stored with its key and replayed from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    /// JSON.
    pub body: String,
}

impl Answer {
    pub fn json(
        status: StatusCode,
        location: Option<String>,
        body: &impl serde::Serialize,
    ) -> Answer {
        Answer {
            status,
            location,
            body: serde_json::to_string(body).expect("responses serialise"),
        }
    }

    fn into_response_replayed(self, replayed: bool) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.into_response_replayed(false)
    }
}

/// The `Idempotency-Key` header, if any (400 when it is not 1-255 visible characters).
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && !key.contains(char::is_whitespace) => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(malformed_key()),
    }
}

/// The refusal of a key that is not 1-255 visible characters.
pub fn malformed_key() -> ApiError {
    ApiError::bad_request("Idempotency-Key must be 1-255 visible characters")
}

/// A stable fingerprint of a request body (as parsed, so formatting does not matter).
pub fn fingerprint(request: &impl serde::Serialize) -> String {
    let canonical = serde_json::to_string(request).expect("requests serialise");
    let mut hasher = std::hash::DefaultHasher::new();
    canonical.hash(&mut hasher);
    format!("{:016x}{:08x}", hasher.finish(), canonical.len())
}

/// The stored answer to `(scope, key)` if the key is known and unexpired,
/// replayed, without claiming anything: checked before a request does
/// work whose outcome may have changed since the first attempt (prices,
/// the stock check), so that a retry gets the original answer rather than
/// a new one. A key that is still being used by a request in flight is not
/// seen here; [`once`] waits for it.
pub async fn replay(
    db: &Db,
    scope: &str,
    key: Option<&str>,
    fingerprint: &str,
    ttl: Duration,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let row = db
        .query_opt(
            "SELECT fingerprint, status, location, body FROM idempotency_keys
             WHERE scope = $1 AND key = $2 AND created_at >= $3 AND status > 0",
            params![scope, key, now_millis() - ttl.as_millis() as i64],
        )
        .await?;
    row.map(|row| answer_from(&row, scope, fingerprint))
        .transpose()
}

/// The answer stored under a claimed key, replayed (`None` if the row is gone).
async fn stored(
    tx: &mut Tx,
    scope: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Response>, ApiError> {
    let row = tx
        .query_opt(
            "SELECT fingerprint, status, location, body FROM idempotency_keys WHERE scope = $1 AND key = $2",
            params![scope, key],
        )
        .await?;
    row.map(|row| answer_from(&row, scope, fingerprint))
        .transpose()
}

/// A replayed answer from a stored row, or 422 when the key was used with
/// another request.
fn answer_from(row: &crate::db::Row, scope: &str, fingerprint: &str) -> Result<Response, ApiError> {
    if row.str("fingerprint")? != fingerprint {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "this key was used with a different request",
        ));
    }
    // The scope is the operation and the caller: only the operation is a
    // label (`POST /orders`).
    let operation: Vec<&str> = scope.splitn(3, ' ').take(2).collect();
    crate::metrics::replayed(&operation.join(" "));
    let answer = Answer {
        status: StatusCode::from_u16(row.i64("status")? as u16).unwrap_or(StatusCode::OK),
        location: row.opt_text("location")?,
        body: row.text("body")?,
    };
    Ok(answer.into_response_replayed(true))
}

pub type Operation<'a> = Pin<Box<dyn Future<Output = Result<Answer, ApiError>> + Send + 'a>>;

/// Performs `operation` once per `(scope, key)`: in one transaction with the
/// claim of the key and the storing of its answer. Without a key it simply
/// runs in a transaction.
pub async fn once<F>(
    db: &Db,
    scope: &str,
    key: Option<String>,
    fingerprint: String,
    ttl: Duration,
    operation: F,
) -> Result<Response, ApiError>
where
    F: for<'t> FnOnce(&'t mut Tx) -> Operation<'t>,
{
    let mut tx = db.begin().await?;
    let Some(key) = key else {
        let answer = operation(&mut tx).await?;
        tx.commit().await?;
        return Ok(answer.into_response());
    };
    let now = now_millis();
    // A new key is claimed, and an expired one claimed afresh, in one
    // statement; a key in use or remembered changes no row.
    let claimed = tx
        .execute(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
             VALUES ($1, $2, $3, 0, '', $4)
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint,
                 status = 0, location = NULL, body = '', created_at = excluded.created_at
             WHERE idempotency_keys.created_at < $5",
            params![scope, &key, &fingerprint, now, now - ttl.as_millis() as i64],
        )
        .await?
        == 1;
    if !claimed {
        return stored(&mut tx, scope, &key, &fingerprint)
            .await?
            .ok_or_else(|| ApiError::conflict("the idempotency key is being used; try again"));
    }
    // Dropping `tx` on an error releases the key along with everything else.
    let answer = operation(&mut tx).await?;
    tx.execute(
        "UPDATE idempotency_keys SET status = $1, location = $2, body = $3 WHERE scope = $4 AND key = $5",
        params![i64::from(answer.status.as_u16()), answer.location.clone(), &answer.body, scope, &key],
    )
    .await?;
    tx.commit().await?;
    Ok(answer.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_content_only() {
        let a = serde_json::json!({ "x": 1, "y": [1, 2] });
        let b: serde_json::Value = serde_json::from_str("{ \"y\": [1,2],   \"x\": 1 }").unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&serde_json::json!({ "x": 2, "y": [1, 2] }))
        );
    }

    #[test]
    fn keys_are_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(key_from(&headers).unwrap(), None);
        headers.insert("idempotency-key", HeaderValue::from_static("abc-1"));
        assert_eq!(key_from(&headers).unwrap(), Some("abc-1".into()));
        headers.insert("idempotency-key", HeaderValue::from_static("has space"));
        assert!(key_from(&headers).is_err());
    }
}
