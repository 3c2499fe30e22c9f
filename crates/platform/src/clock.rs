//! Wall-clock helpers: timestamps are stored as RFC 3339 text (portable
//! across SQLite and PostgreSQL, readable in a dump) or epoch milliseconds
//! where they are compared.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn now_rfc3339() -> String {
    to_rfc3339(OffsetDateTime::now_utc())
}

pub fn to_rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .expect("a UTC time always formats as RFC 3339")
}

pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch seconds, as tokens count time (`iat`, `nbf`, `exp`).
pub fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The RFC 3339 text of `unix_millis` (before 1970 or beyond 9999: the
/// nearest of those ends).
pub fn rfc3339_at(unix_millis: i64) -> String {
    let nanos = i128::from(unix_millis.clamp(0, 253_402_300_799_000)) * 1_000_000;
    to_rfc3339(OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("within the clamp"))
}

/// Seconds from an RFC 3339 time to now (0 for a time to come); `None`
/// when `at` is not one.
pub fn seconds_since(at: &str) -> Option<f64> {
    let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some((OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0))
}
