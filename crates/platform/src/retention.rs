//! Retention of the tables that only grow: each service sweeps, once a
//! minute, what is older than it keeps.
//!
//! | table | kept | why that long |
//! |---|---|---|
//! | `idempotency_keys` | the key TTL (24 h) | a retry after that is a new request |
//! | `inbox` | the replay window (7 days), counted from the event's making and from its handling | a redelivery within it has no second effect; `agora events replay` replays only events younger than it; an old event handled lately (a dead letter replayed) is kept for the window after its handling |
//! | `outbox`, published rows | 30 days | the event log `agora events` reads; unpublished rows are never swept |
//! | a service's own records (notifications, and the contacts they were sent to) | its setting (90 days) | |
//!
//! Rows are swept by a key that grows with time (UUID v7 ids, whose text
//! sorts by the millisecond they were made; milliseconds for idempotency
//! keys), through an index, at most [`BATCH`] rows a statement and
//! [`BATCHES`] statements a pass, so a sweep never holds a long lock.

use std::time::Duration;

use async_trait::async_trait;

use crate::db::{Db, DbError, Migration};
use crate::params;
use crate::periodic::Periodic;

pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "platform_0004_idempotency_keys_by_age",
    sql: include_str!("../migrations/platform_0004_idempotency_keys_by_age.sql"),
}];

/// Rows one statement deletes at most.
pub const BATCH: i64 = 1_000;
/// Statements one pass runs at most per table.
pub const BATCHES: usize = 20;

/// How long each kind of row is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub idempotency_keys: Duration,
    /// The replay window.
    pub inbox: Duration,
    pub event_log: Duration,
    /// The service's own records (notifications).
    pub records: Duration,
}

impl Default for Keep {
    fn default() -> Self {
        Keep {
            idempotency_keys: crate::idempotency::DEFAULT_TTL,
            inbox: Duration::from_secs(7 * 24 * 3600),
            event_log: Duration::from_secs(30 * 24 * 3600),
            records: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// A table a service adds to the sweep: rows whose `key` column (a UUID
/// v7) is older than [`Keep::records`].
#[derive(Debug, Clone, Copy)]
pub struct Records {
    pub table: &'static str,
    pub key: &'static str,
}

/// The smallest UUID v7 of the millisecond `unix_millis`, as text: every
/// id made before that millisecond sorts below it.
pub fn uuid_v7_floor(unix_millis: i64) -> String {
    let millis = unix_millis.clamp(0, (1 << 48) - 1) as u128;
    uuid::Uuid::from_u128((millis << 80) | (0x7 << 76) | (0b10 << 62)).to_string()
}

/// One service's sweep.
pub struct Retention {
    db: Db,
    keep: Keep,
    /// The consumer whose inbox rows this service keeps (none: it consumes
    /// nothing).
    consumer: Option<&'static str>,
    records: Vec<Records>,
}

impl Retention {
    pub fn new(db: Db, keep: Keep, consumer: Option<&'static str>, records: Vec<Records>) -> Self {
        Retention {
            db,
            keep,
            consumer,
            records,
        }
    }

    /// Deletes up to [`BATCHES`] × [`BATCH`] rows with `sql` (which deletes
    /// at most `BATCH` rows matching `params`); returns how many went.
    async fn sweep(&self, sql: &str, params: &[crate::db::Value]) -> Result<usize, DbError> {
        let mut deleted = 0;
        for _ in 0..BATCHES {
            let mut tx = self.db.begin().await?;
            let n = tx.execute(sql, params).await? as usize;
            tx.commit().await?;
            deleted += n;
            if n < BATCH as usize {
                break;
            }
        }
        Ok(deleted)
    }

    /// One pass over every table; returns the rows deleted.
    pub async fn sweep_all(&self) -> Result<usize, DbError> {
        let now = crate::clock::now_millis();
        let before = |keep: Duration| now - keep.as_millis() as i64;
        let mut deleted = self
            .sweep(
                "DELETE FROM idempotency_keys WHERE (scope, key) IN (
                    SELECT scope, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
                params![before(self.keep.idempotency_keys), BATCH],
            )
            .await?;
        if let Some(consumer) = self.consumer {
            deleted += self
                .sweep(
                    "DELETE FROM inbox WHERE consumer = $1 AND event_id IN (
                        SELECT event_id FROM inbox WHERE consumer = $1 AND event_id < $2
                        AND handled_at < $3 ORDER BY event_id LIMIT $4)",
                    params![
                        consumer,
                        uuid_v7_floor(before(self.keep.inbox)),
                        crate::clock::rfc3339_at(before(self.keep.inbox)),
                        BATCH
                    ],
                )
                .await?;
        }
        // SQLite gives a new row the `rowid` after the largest there is:
        // the last row stays, so that no `rowid` is given twice (the
        // embedded bus reads the outbox by it).
        let last_stays = if self.db.is_sqlite() {
            " AND rowid < (SELECT MAX(rowid) FROM outbox)"
        } else {
            ""
        };
        deleted += self
            .sweep(
                &format!(
                    "DELETE FROM outbox WHERE id IN (
                        SELECT id FROM outbox WHERE id < $1 AND published_at IS NOT NULL{last_stays}
                        ORDER BY id LIMIT $2)"
                ),
                params![uuid_v7_floor(before(self.keep.event_log)), BATCH],
            )
            .await?;
        for records in &self.records {
            let sql = format!(
                "DELETE FROM {table} WHERE {key} IN (
                    SELECT {key} FROM {table} WHERE {key} < $1 ORDER BY {key} LIMIT $2)",
                table = records.table,
                key = records.key
            );
            deleted += self
                .sweep(
                    &sql,
                    params![uuid_v7_floor(before(self.keep.records)), BATCH],
                )
                .await?;
        }
        Ok(deleted)
    }
}

#[async_trait]
impl Periodic for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn run_once(&self) -> anyhow::Result<usize> {
        Ok(self.sweep_all().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_of_a_millisecond_sorts_below_every_id_of_it_and_above_every_earlier_one() {
        let millis = 1_764_000_000_123;
        let floor = uuid_v7_floor(millis);
        let at = |ms: u64| {
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                (ms % 1000) as u32 * 1_000_000,
            ))
            .to_string()
        };
        assert!(at(millis as u64) >= floor);
        assert!(at(millis as u64 + 1) > floor);
        assert!(at(millis as u64 - 1) < floor);
        assert_eq!(uuid::Uuid::parse_str(&floor).unwrap().get_version_num(), 7);
    }
}
