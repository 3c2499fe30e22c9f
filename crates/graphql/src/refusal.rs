//! A refusal of the API, as a GraphQL error: the same message, and in
//! `extensions` the HTTP status the REST call answered, a code a client can
//! match on, and each refused field (`fields: [{field, message}]`, named as
//! in the REST body) — so the two surfaces refuse alike.

use agora_platform::client::Answer;
use async_graphql::{Error, ErrorExtensions};
use serde::de::DeserializeOwned;

/// The code for a status, in the words GraphQL servers commonly use.
fn code(status: u16) -> &'static str {
    match status {
        400 | 413 | 415 | 422 => "BAD_USER_INPUT",
        401 => "UNAUTHENTICATED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        429 => "TOO_MANY_REQUESTS",
        503 => "UNAVAILABLE",
        _ => "INTERNAL_SERVER_ERROR",
    }
}

pub fn refused(answer: &Answer) -> Error {
    let status = answer.status.as_u16();
    let fields: Vec<async_graphql::Value> = answer
        .field_errors()
        .into_iter()
        .map(|(field, message)| {
            let mut entry = async_graphql::indexmap::IndexMap::new();
            entry.insert(async_graphql::Name::new("field"), field.into());
            entry.insert(async_graphql::Name::new("message"), message.into());
            async_graphql::Value::Object(entry)
        })
        .collect();
    Error::new(answer.detail()).extend_with(|_, e| {
        e.set("code", code(status));
        e.set("status", status);
        if !fields.is_empty() {
            e.set("fields", async_graphql::Value::List(fields.clone()));
        }
        if let Some(seconds) = answer.retry_after {
            e.set("retryAfter", seconds);
        }
    })
}

/// The body of a successful answer as `T`, or the refusal.
pub fn read<T: DeserializeOwned>(answer: Answer) -> async_graphql::Result<T> {
    if !answer.ok() {
        return Err(refused(&answer));
    }
    serde_json::from_value(answer.body).map_err(|e| {
        tracing::warn!(error = %e, "an API answer did not have its documented shape");
        Error::new("the answer could not be read").extend_with(|_, x| {
            x.set("code", "INTERNAL_SERVER_ERROR");
        })
    })
}

/// As [`read`], with a 404 read as nothing: `product(id)` of an unknown id
/// is `null`, as GraphQL clients expect of a lookup.
pub fn read_opt<T: DeserializeOwned>(answer: Answer) -> async_graphql::Result<Option<T>> {
    match answer.status.as_u16() {
        404 => Ok(None),
        _ => read(answer).map(Some),
    }
}

/// Gives an error raised while resolving a field, that no resolver
/// labelled, its code and status: an argument that is not of its type
/// (async-graphql's "Failed to parse …", say an `Int` beyond 32 bits) is
/// the caller's; anything else failed here. A query refused before it ran
/// (its own validation, no `path`) stays as GraphQL reports it.
pub fn label(error: &mut async_graphql::ServerError) {
    if error.path.is_empty() || error.extensions.is_some() {
        return;
    }
    let status: u16 = match error.message.starts_with("Failed to parse") {
        true => 400,
        false => {
            tracing::warn!(error = %error.message, "a GraphQL field failed");
            500
        }
    };
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code(status));
    extensions.set("status", status);
    error.extensions = Some(extensions);
}
