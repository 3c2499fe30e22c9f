//! Transactional outbox and its relay.
//!
//! A service writes its state change and the events it emits in one local
//! transaction ([`Tx::publish`]); the relay later hands committed events to
//! the bus and marks them published only once the bus has them. A rolled-back
//! change therefore never publishes, and a crash between commit and publish
//! only delays (and may repeat) a publish, which consumers' inboxes absorb.
//! Published rows are kept: the outbox doubles as the service's event log.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError, Migration, Tx};
use crate::events::Envelope;
use crate::params;
use crate::reconnect::Reconnect;
use crate::transport::Publisher;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "platform_0001_outbox_inbox",
        sql: include_str!("../migrations/platform_0001_outbox_inbox.sql"),
    },
    // `envelope` is what the event log keeps and shows (secrets masked);
    // `secrets` the masked fields' values, held only until the publish.
    Migration {
        name: "platform_0003_outbox_secrets",
        sql: include_str!("../migrations/platform_0003_outbox_secrets.sql"),
    },
    Migration {
        name: "platform_0005_outbox_by_subject",
        sql: include_str!("../migrations/platform_0005_outbox_by_subject.sql"),
    },
];

/// An event as stored in the outbox and handed to the bus.
#[derive(Debug, Clone)]
pub struct OutboxRecord {
    pub id: String,
    pub routing_key: String,
    /// The envelope, serialised as JSON.
    pub envelope: String,
}

impl Tx {
    /// Records `envelope` for publication when (and only if) this
    /// transaction commits.
    pub async fn publish(&mut self, envelope: &Envelope) -> Result<(), DbError> {
        let routing_key = envelope
            .routing_key()
            .expect("events built from DomainEvent types have a routing key");
        // An event that carries a secret is kept masked from the start;
        // the secret itself is for whoever publishes it alone (the relay,
        // or the embedded bus reading the outbox), which puts it back and
        // drops it once the event is published.
        let (json, secrets) = crate::events::split_secrets(envelope);
        let mut values = params![
            envelope.id,
            routing_key,
            &envelope.subject,
            json,
            &envelope.time,
            secrets
        ]
        .to_vec();
        // Read as a queue (the embedded bus), the outbox publishes an event
        // by committing it.
        let columns = if self.outbox_is_read() {
            values.push(envelope.time.as_str().into());
            "id, routing_key, subject, envelope, created_at, secrets, published_at"
        } else {
            "id, routing_key, subject, envelope, created_at, secrets"
        };
        self.insert_at_commit("outbox", columns, values);
        self.mark_outbox(routing_key);
        Ok(())
    }
}

/// Brings events written before their secrets were kept apart (by an
/// earlier release) to today's form: masked in the log, the secret kept
/// only while the event is unpublished. Run at start; returns how many
/// it changed (none, once done).
pub async fn mask_kept_secrets(db: &Db) -> Result<usize, DbError> {
    let keys = crate::events::routing_keys_with_secrets();
    let mut values: Vec<crate::db::Value> = vec![r#"%"payment_token":"****%"#.into()];
    values.extend(keys.iter().map(|k| crate::db::Value::from(*k)));
    let rows = db
        .query(
            &format!(
                "SELECT id, envelope, published_at FROM outbox
                 WHERE secrets IS NULL AND envelope NOT LIKE $1 AND routing_key IN ({})",
                crate::db::placeholders(2, keys.len())
            ),
            &values,
        )
        .await?;
    let mut changed = 0;
    for chunk in rows.chunks(500) {
        let mut tx = db.begin().await?;
        for row in chunk {
            let Ok(envelope) = serde_json::from_str::<Envelope>(row.str("envelope")?) else {
                continue;
            };
            let (masked, secrets) = crate::events::split_secrets(&envelope);
            if secrets.is_none() {
                continue;
            }
            let unpublished = row.opt_text("published_at")?.is_none();
            tx.execute(
                "UPDATE outbox SET envelope = $1, secrets = $2 WHERE id = $3",
                params![masked, secrets.filter(|_| unpublished), row.text("id")?],
            )
            .await?;
            changed += 1;
        }
        tx.commit().await?;
    }
    if changed > 0 {
        tracing::info!(
            events = changed,
            "masked the secrets of events logged by an earlier release"
        );
    }
    Ok(changed)
}

const RELAY_BATCH: i64 = 512;

/// Publishes committed outbox rows until `shutdown`, in batches, woken by
/// commits that wrote events and by a slow poll as a safety net.
///
/// `linger` is the longest wait after a wake-up for more events to join the
/// batch: zero for SQLite, where a relay cycle is cheap; a few milliseconds
/// for PostgreSQL and RabbitMQ, where each cycle costs several round trips
/// and a confirm, so that under load one cycle carries many events. It
/// waits only after a cycle that published more than one event
/// ([`Linger`](crate::consumer::Linger)): a lone event goes out at once.
pub async fn run_relay(
    db: Db,
    publisher: Arc<dyn Publisher>,
    linger: Duration,
    shutdown: CancellationToken,
) {
    let mut reconnect = Reconnect::default();
    let mut linger = crate::consumer::Linger::new(linger);
    while !shutdown.is_cancelled() {
        match relay_once(&db, publisher.as_ref()).await {
            Ok(published) => {
                reconnect.succeeded();
                linger.took(published);
                // A full batch: more may be waiting. Otherwise the outbox is
                // drained, and the next commit that writes an event wakes
                // the relay, even one made while this batch went out.
                if published == RELAY_BATCH as usize {
                    continue;
                }
                tokio::select! {
                    _ = db.outbox_ready().notified() => {
                        let wait = linger.next();
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                reconnect
                    .pause(&shutdown, |delay| {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "outbox relay failed; events stay in the outbox");
                    })
                    .await;
            }
        }
    }
}

/// Publishes one batch; returns how many events went out.
///
/// On PostgreSQL one statement claims a batch (`FOR UPDATE SKIP LOCKED`, so
/// several instances of a service relay side by side without publishing the
/// same rows) and marks it published, in a transaction that commits only
/// once the bus has confirmed the batch: a failed publish rolls the marks
/// back. SQLite has one process and one writer: it reads from a reader
/// connection and takes the writer only to mark the rows, so the service
/// keeps writing meanwhile.
pub async fn relay_once(db: &Db, publisher: &dyn Publisher) -> anyhow::Result<usize> {
    let now = crate::clock::now_rfc3339();
    if db.is_sqlite() {
        let rows = db
            .query(
                "SELECT id, routing_key, envelope, secrets FROM outbox
                 WHERE published_at IS NULL ORDER BY id LIMIT $1",
                params![RELAY_BATCH],
            )
            .await?;
        let records = records(&rows)?;
        if records.is_empty() {
            return Ok(0);
        }
        publisher.publish(&records).await?;
        let mut values = vec![crate::db::Value::from(now)];
        values.extend(records.iter().map(|r| crate::db::Value::from(&r.id)));
        let mut tx = db.begin().await?;
        tx.execute(
            &format!(
                "UPDATE outbox SET published_at = $1, secrets = NULL WHERE id IN ({})",
                crate::db::placeholders(2, records.len())
            ),
            &values,
        )
        .await?;
        tx.commit().await?;
        count_published(&records);
        return Ok(records.len());
    }
    let mut tx = db.begin_relaxed().await?;
    let rows = tx
        .query(
            "WITH claimed AS (
                SELECT id, secrets FROM outbox
                WHERE published_at IS NULL ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
             )
             UPDATE outbox AS o SET published_at = $1, secrets = NULL
             FROM claimed WHERE o.id = claimed.id
             RETURNING o.id, o.routing_key, o.envelope, claimed.secrets",
            params![now, RELAY_BATCH],
        )
        .await?;
    let mut records = records(&rows)?;
    if records.is_empty() {
        return Ok(0);
    }
    // Publish in the order the events were written.
    records.sort_by(|a, b| a.id.cmp(&b.id));
    publisher.publish(&records).await?;
    tx.commit().await?;
    count_published(&records);
    Ok(records.len())
}

/// Events not yet published, and the age in seconds of the oldest (0
/// when none waits): both read through the index of unpublished rows.
pub async fn backlog(db: &Db) -> Result<(i64, f64), DbError> {
    let count = db
        .query_opt(
            "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await?
        .map(|r| r.i64("n"))
        .transpose()?
        .unwrap_or(0);
    let oldest = db
        .query_opt(
            "SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1",
            &[],
        )
        .await?
        .map(|r| r.text("created_at"))
        .transpose()?;
    let age = oldest
        .and_then(|at| crate::clock::seconds_since(&at))
        .unwrap_or(0.0);
    Ok((count, age))
}

/// Each event's type and its source service, counted once published.
fn count_published(records: &[OutboxRecord]) {
    for record in records {
        count_published_key(&record.routing_key);
    }
}

/// One event with `routing_key` published, counted by type and source.
pub(crate) fn count_published_key(routing_key: &str) {
    let event = crate::events::event_type(routing_key);
    let (source, name) = event.map_or(("unknown", "unknown"), |e| (e.source, e.name));
    crate::metrics::published(source, name, 1);
}

/// Rows of `id, routing_key, envelope, secrets` as the events to publish:
/// whole again, with their secrets put back.
fn records(rows: &[crate::db::Row]) -> Result<Vec<OutboxRecord>, DbError> {
    rows.iter()
        .map(|r| {
            let envelope = whole(r.text("envelope")?, r.opt_text("secrets")?.as_deref())?;
            Ok(OutboxRecord {
                id: r.text("id")?,
                routing_key: r.text("routing_key")?,
                envelope,
            })
        })
        .collect()
}

/// An outbox row's envelope as `kept`, with its `secrets` (if it still
/// holds them) put back: the event as it is published.
pub(crate) fn whole(kept: String, secrets: Option<&str>) -> Result<String, DbError> {
    match secrets {
        Some(secrets) => crate::events::with_secrets(&kept, secrets)
            .map_err(|e| DbError::Decode(format!("outbox secrets: {e}"))),
        None => Ok(kept),
    }
}
