//! Dead letters an operator can act on: list, show, replay, purge, filtered
//! by service, event type, event id and age, with a dry run. The same
//! operations work on the embedded bus and on RabbitMQ's dead-letter queues
//! ([`DeadLetterQueues`]); the CLI and the admin REST endpoints use them.
//!
//! Replay puts the original message, event id included, back on its
//! service's queue: the consumer's inbox makes a second replay harmless.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A message in a service's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The consuming service whose queue it came from.
    pub service: String,
    pub event_id: String,
    /// CloudEvents type, or `?` for a message that is not an event.
    pub event_type: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Failed attempts.
    pub attempts: i64,
    pub error: String,
    pub failed_at: String,
    /// The original message (secrets masked), in one letter's answer only.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    pub body: String,
}

impl DeadLetter {
    /// The letter as shown to a person: the secrets its message holds (a
    /// payment token) masked. The queue keeps the message whole, so that a
    /// replay still carries what the consumer needs.
    pub fn redacted(mut self) -> DeadLetter {
        if let Some(masked) = crate::events::redacted(&self.body) {
            self.body = masked;
        }
        self
    }
}

/// Which dead letters an operation applies to; empty matches all.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Filter {
    pub service: Option<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Only letters whose error is exactly this (a group of letters that
    /// failed alike, as the console shows them).
    pub error: Option<String>,
    /// Only letters that failed at least this many seconds ago.
    pub older_than_secs: Option<u64>,
}

/// Dead letters kept per service by default; past it, the oldest go (on
/// RabbitMQ the DLQ's `x-max-length`, dropping from its head).
pub const DEFAULT_MAX: u32 = 10_000;

/// The oldest age a filter may name: ten years, far beyond any dead
/// letter, and small enough that no conversion can overflow.
pub const MAX_AGE_SECS: u64 = 10 * 365 * 24 * 3600;

impl Filter {
    /// Refuses what would select more than it says: an age of 0 (every
    /// letter: say `all` for that) or beyond [`MAX_AGE_SECS`] (it used to
    /// wrap around to a negative age, which also matched every letter).
    pub fn check(&self) -> Result<(), String> {
        match self.older_than_secs {
            Some(secs) if !(1..=MAX_AGE_SECS).contains(&secs) => Err(format!(
                "older_than_secs must be between 1 and {MAX_AGE_SECS} (to select every letter, say all)"
            )),
            _ => Ok(()),
        }
    }

    /// Exactly one letter.
    pub fn one(service: &str, event_id: &str) -> Filter {
        Filter {
            service: Some(service.to_owned()),
            event_id: Some(event_id.to_owned()),
            ..Filter::default()
        }
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.service.is_none()
            && self.event_type.is_none()
            && self.event_id.is_none()
            && self.error.is_none()
            && self.older_than_secs.is_none()
    }

    pub fn matches(&self, letter: &DeadLetter, now: OffsetDateTime) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let old_enough = self.older_than_secs.is_none_or(|secs| {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            OffsetDateTime::parse(&letter.failed_at, &Rfc3339)
                .map(|at| (now - at).whole_seconds() >= secs)
                .unwrap_or(true)
        });
        same(&self.service, &letter.service)
            && same(&self.event_type, &letter.event_type)
            && same(&self.event_id, &letter.event_id)
            && same(&self.error, &letter.error)
            && old_enough
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    /// Back onto the service's queue, as it was.
    Replay,
    /// Gone for good.
    Purge,
}

/// The dead-letter queues of one deployment.
#[async_trait]
pub trait DeadLetterQueues: Send + Sync {
    /// Applies `action` to the letters matching `filter` (or, with
    /// `dry_run`, only says which) and returns them.
    async fn act(
        &self,
        action: Action,
        filter: &Filter,
        dry_run: bool,
    ) -> anyhow::Result<Vec<DeadLetter>>;
}

/// The `type` of an envelope, or `?` when the body is not one.
pub fn event_type_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(failed_at: &str) -> DeadLetter {
        DeadLetter {
            service: "inventory".into(),
            event_id: "e1".into(),
            event_type: "OrderCreated".into(),
            routing_key: "order.created.v1".into(),
            attempts: 1,
            error: "permanent".into(),
            failed_at: failed_at.into(),
            body: String::new(),
        }
    }

    #[test]
    fn filters_by_service_type_id_error_and_age() {
        let now = OffsetDateTime::parse("2026-01-01T00:10:00Z", &Rfc3339).unwrap();
        let l = letter("2026-01-01T00:00:00Z");
        assert!(Filter::default().matches(&l, now));
        let by = |f: Filter| f.matches(&l, now);
        assert!(by(Filter {
            service: Some("inventory".into()),
            ..Filter::default()
        }));
        assert!(!by(Filter {
            service: Some("payment".into()),
            ..Filter::default()
        }));
        assert!(!by(Filter {
            event_type: Some("OrderCompleted".into()),
            ..Filter::default()
        }));
        assert!(by(Filter {
            event_id: Some("e1".into()),
            ..Filter::default()
        }));
        assert!(by(Filter {
            error: Some(l.error.clone()),
            ..Filter::default()
        }));
        assert!(!by(Filter {
            error: Some(format!("{} ", l.error)),
            ..Filter::default()
        }));
        assert!(by(Filter {
            older_than_secs: Some(600),
            ..Filter::default()
        }));
        assert!(!by(Filter {
            older_than_secs: Some(601),
            ..Filter::default()
        }));
    }

    #[test]
    fn an_age_of_zero_or_beyond_ten_years_is_refused_and_no_age_wraps_around() {
        let aged = |secs| Filter {
            older_than_secs: Some(secs),
            ..Filter::default()
        };
        assert!(aged(0).check().is_err());
        assert!(aged(MAX_AGE_SECS + 1).check().is_err());
        assert!(aged(u64::MAX).check().is_err());
        assert!(aged(1).check().is_ok() && aged(MAX_AGE_SECS).check().is_ok());
        assert!(Filter::default().check().is_ok());
        // Even unchecked, a huge age matches nothing rather than everything.
        let now = OffsetDateTime::parse("2026-01-01T00:10:00Z", &Rfc3339).unwrap();
        assert!(!aged(u64::MAX).matches(&letter("2026-01-01T00:00:00Z"), now));
    }

    #[test]
    fn event_types_are_read_from_envelopes() {
        assert_eq!(event_type_of(r#"{"type":"OrderCreated"}"#), "OrderCreated");
        assert_eq!(event_type_of("garbage"), "?");
    }
}
