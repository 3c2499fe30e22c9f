//! Idempotent event consumers: inbox, retries with backoff, dead letters.
//!
//! A handler's effect and the inbox row naming the event commit in one
//! transaction, so a redelivered event finds its id in the inbox and has no
//! second effect. Transient failures retry with exponential backoff and full
//! jitter up to a bounded number of attempts; permanent failures (a payload
//! that does not match its schema, an unknown type or version) go straight to
//! the dead-letter queue. Neither ever stops the consumer.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use tracing::{Instrument, Span};
use uuid::Uuid;

use crate::db::{Db, DbError, Tx, Value};
use crate::events::{DecodeError, Envelope};
use crate::metrics::{self, Delivery};
use crate::params;
use crate::telemetry;
use crate::transport::Settlement;

/// The error a handler failed with, kept as it was (a storage error stays
/// a `DbError`, for the log and for whoever inspects the chain).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a handler failed, for the consumer to settle the delivery: the
/// boundary between a service's reactions and the transport.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: storage busy or unreachable, a dependency not ready.
    #[error("{0}")]
    Transient(Cause),
    /// Will never succeed: goes to the dead-letter queue at once.
    #[error("{0}")]
    Permanent(Cause),
}

impl HandlerError {
    pub fn transient(e: impl std::fmt::Display) -> Self {
        HandlerError::Transient(e.to_string().into())
    }
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        HandlerError::Permanent(e.to_string().into())
    }
}

impl From<DbError> for HandlerError {
    /// An event whose data the storage refuses can never be applied: it
    /// goes to the dead-letter queue at once instead of retrying.
    fn from(e: DbError) -> Self {
        match e.fault() {
            crate::db::Fault::Data => HandlerError::Permanent(Box::new(e)),
            _ => HandlerError::Transient(Box::new(e)),
        }
    }
}

impl From<DecodeError> for HandlerError {
    fn from(e: DecodeError) -> Self {
        HandlerError::Permanent(Box::new(e))
    }
}

/// A service's reaction to the events it subscribes to.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// The consuming service: names its queue and its inbox rows.
    fn consumer(&self) -> &'static str;
    /// The routing keys its queue is bound to.
    fn routing_keys(&self) -> &'static [&'static str];
    /// Applies `event` inside `tx`; events it emits go through `tx.publish`.
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError>;

    /// Applies `events`, in order, inside `tx`. A handler whose events read
    /// the same kind of row overrides this to read them all in one statement.
    async fn handle_all(&self, tx: &mut Tx, events: &[&Envelope]) -> Result<(), HandlerError> {
        for event in events {
            self.handle(tx, event).await?;
        }
        Ok(())
    }
}

/// What a service consumes, decoded once: `incoming! { pub enum Incoming {
/// OrderCreated, OrderCancelled } }` makes an enum with one variant per
/// event (named and typed after it), `Incoming::decode(&envelope)` (an
/// event of another type is permanent: it goes to the dead-letter queue)
/// and `Incoming::ROUTING_KEYS`, the keys the service's queue is bound to,
/// so that what a handler matches on and what its queue receives are one
/// list.
#[macro_export]
macro_rules! incoming {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($event:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[allow(clippy::large_enum_variant)]
        $vis enum $name {
            $($event($event)),+
        }

        impl $name {
            /// The routing keys of the events it holds.
            pub const ROUTING_KEYS: &'static [&'static str] = &[
                $(<$event as $crate::events::DomainEvent>::ROUTING_KEY),+
            ];

            /// `event` decoded, or a permanent error for an event of a type
            /// it does not hold.
            pub fn decode(
                event: &$crate::events::Envelope,
            ) -> Result<$name, $crate::consumer::HandlerError> {
                $(
                    if event.is::<$event>() {
                        return Ok($name::$event(event.decode()?));
                    }
                )+
                Err($crate::consumer::HandlerError::permanent(format!(
                    "{} is not among the events handled here",
                    event.event_type
                )))
            }
        }
    };
}

/// How often and how patiently a consumer retries transient failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The longest wait before retry number `attempt`: `min(max, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_delay)
    }

    /// Exponential backoff with full jitter: uniform in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(rand::random::<f64>())
    }

    /// What to do with a delivery whose handling failed for the
    /// `failed_attempts`-th time (counting this one).
    pub fn settle(&self, error: &HandlerError, failed_attempts: u32) -> Settlement {
        match error {
            HandlerError::Permanent(e) => Settlement::DeadLetter {
                error: format!("permanent: {e}"),
            },
            HandlerError::Transient(e) if failed_attempts >= self.max_attempts => {
                Settlement::DeadLetter {
                    error: format!("gave up after {failed_attempts} attempts: {e}"),
                }
            }
            HandlerError::Transient(e) => Settlement::Retry {
                delay_ms: self.delay(failed_attempts).as_millis() as u64,
                error: e.to_string(),
            },
        }
    }
}

/// Records `events` in the inbox (one statement for all of them) and
/// applies, in order, those that are new, inside `tx`. Returns how many were
/// new; an event that occurs twice in `events` is applied once.
pub async fn apply_in(
    tx: &mut Tx,
    handler: &dyn EventHandler,
    events: &[&Envelope],
) -> Result<usize, HandlerError> {
    let handled_at = crate::clock::now_rfc3339();
    let rows: Vec<Vec<Value>> = events
        .iter()
        .map(|e| params![handler.consumer(), e.id, &handled_at].to_vec())
        .collect();
    let mut fresh: HashSet<String> = tx
        .insert_rows(
            "inbox",
            "consumer, event_id, handled_at",
            &rows,
            Some("event_id"),
        )
        .await?
        .iter()
        .map(|row| row.text("event_id"))
        .collect::<Result<_, _>>()?;
    let (new, seen): (Vec<&Envelope>, Vec<&Envelope>) =
        events.iter().partition(|e| fresh.remove(&e.id.to_string()));
    handler.handle_all(tx, &new).await?;
    let consumer = handler.consumer();
    let outcomes: Vec<(String, Delivery)> = new
        .iter()
        .map(|e| (e.event_type.clone(), Delivery::Applied))
        .chain(
            seen.iter()
                .map(|e| (e.event_type.clone(), Delivery::Duplicate)),
        )
        .collect();
    tx.after_commit(move || {
        for (event_type, outcome) in outcomes {
            metrics::delivered(consumer, &event_type, outcome);
        }
    });
    Ok(new.len())
}

/// Applies one event in its own transaction.
pub async fn apply(
    db: &Db,
    handler: &dyn EventHandler,
    event: &Envelope,
) -> Result<bool, HandlerError> {
    let mut tx = db.begin().await?;
    let fresh = apply_in(&mut tx, handler, &[event]).await? == 1;
    tx.commit().await?;
    Ok(fresh)
}

/// Parses a raw message into an envelope; a message that is not one is poison.
pub fn parse_envelope(body: &str) -> Result<Envelope, HandlerError> {
    serde_json::from_str(body)
        .map_err(|e| HandlerError::permanent(format!("not an event envelope: {e}")))
}

/// Handles a batch of messages, in one transaction when all succeed (one
/// commit for many events), else each on its own so that one bad message
/// cannot hold back the others. Returns each message's outcome.
pub async fn handle_batch(
    db: &Db,
    handler: &dyn EventHandler,
    bodies: &[&str],
) -> Vec<Result<(), HandlerError>> {
    crate::chaos::handler_delay().await;
    let parsed: Vec<Result<Envelope, HandlerError>> =
        bodies.iter().map(|b| parse_envelope(b)).collect();
    metrics::batch(handler.consumer(), bodies.len());
    let spans: Vec<(Uuid, Span)> = parsed
        .iter()
        .flatten()
        .map(|e| (e.id, telemetry::consume_span(handler.consumer(), e)))
        .collect();
    // Logs and storage spans of a single event nest in its consume span;
    // a batch's are in a span naming how many it holds.
    let scope = match spans.as_slice() {
        [(_, one)] => one.clone(),
        _ => tracing::info_span!(
            "consume_batch",
            service = handler.consumer(),
            events = bodies.len()
        ),
    };
    let outcomes =
        telemetry::handling(&spans, handle_parsed(db, handler, parsed).instrument(scope)).await;
    if tracing::enabled!(tracing::Level::DEBUG) {
        for (_, span) in &spans {
            span.in_scope(|| tracing::debug!("event processed"));
        }
    }
    outcomes
}

async fn handle_parsed(
    db: &Db,
    handler: &dyn EventHandler,
    parsed: Vec<Result<Envelope, HandlerError>>,
) -> Vec<Result<(), HandlerError>> {
    if parsed.iter().all(Result::is_ok) && parsed.len() > 1 {
        let together = async {
            let events: Vec<&Envelope> = parsed.iter().flatten().collect();
            let mut tx = db.begin().await?;
            apply_in(&mut tx, handler, &events).await?;
            tx.commit().await?;
            Ok::<_, HandlerError>(())
        };
        if unwound(together).await.is_ok() {
            return parsed.iter().map(|_| Ok(())).collect();
        }
    }
    let mut outcomes = Vec::with_capacity(parsed.len());
    for event in parsed {
        outcomes.push(match event {
            Ok(event) => unwound(apply(db, handler, &event)).await.map(|_| ()),
            Err(e) => Err(e),
        });
    }
    outcomes
}

/// Runs a handler's work so that a panic in it fails that work alone: the
/// transaction it held is dropped (rolled back), and the event is poison
/// (a handler that panics on it will do so again), so it goes to the
/// dead-letter queue while the consumer goes on with the rest.
async fn unwound<T>(
    work: impl std::future::Future<Output = Result<T, HandlerError>>,
) -> Result<T, HandlerError> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let message = crate::supervise::panic_message(&*payload);
            tracing::error!(panic = %message, "an event handler panicked");
            Err(HandlerError::permanent(format!(
                "the handler panicked: {message}"
            )))
        }
    }
}

/// Deliveries handled in one transaction at most.
pub const BATCH: usize = 64;

/// How long to wait for more work to join a batch, from the size of the
/// batch before: the longest wait after a batch of more than one, none
/// after a batch of one.
///
/// Lingering turns many small transactions, acks and confirms into a few
/// large ones, which is what a loaded machine needs; on a quiet one it only
/// adds latency, once at every hop of the saga (about 70 ms an order in
/// the distributed mode at one order in flight). A batch of one says the
/// work arrives more slowly than it is done, so the next batch takes only
/// what is already waiting; as soon as two are waiting, the load is back
/// and so is the linger.
#[derive(Debug, Clone, Copy)]
pub struct Linger {
    longest: Duration,
    last_batch: usize,
}

impl Linger {
    pub fn new(longest: Duration) -> Self {
        Linger {
            longest,
            last_batch: 0,
        }
    }

    /// The wait for the next batch.
    pub fn next(&self) -> Duration {
        if self.last_batch > 1 {
            self.longest
        } else {
            Duration::ZERO
        }
    }

    /// Records the size of the batch just taken. An empty one (a relay's
    /// poll that found nothing) says nothing of the load, so it changes
    /// nothing.
    pub fn took(&mut self, batch: usize) {
        if batch > 0 {
            self.last_batch = batch;
        }
    }
}

/// A batch from `stream`: `first`, then whatever arrives within `linger`
/// of it, up to `max` items; stops early when the stream ends. With no
/// linger it takes what is already waiting.
pub async fn gather<S>(first: S::Item, stream: &mut S, max: usize, linger: Duration) -> Vec<S::Item>
where
    S: futures_util::Stream + Unpin,
{
    use futures_util::StreamExt;
    let mut batch = vec![first];
    let deadline = tokio::time::sleep(linger);
    tokio::pin!(deadline);
    while batch.len() < max {
        let next = tokio::select! {
            biased;
            next = stream.next() => next,
            _ = &mut deadline => break,
        };
        match next {
            Some(item) => batch.push(item),
            None => break,
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream yielding each offset when that many ms have passed.
    fn arriving(offsets_ms: &[u64]) -> futures_util::stream::BoxStream<'static, u64> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let offsets = offsets_ms.to_vec();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for ms in offsets {
                tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
                let _ = tx.send(ms);
            }
        });
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|v| (v, rx))
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_takes_what_arrives_within_the_linger() {
        let mut stream = arriving(&[2, 6, 9, 15]);
        let batch = gather(0, &mut stream, 64, Duration::from_millis(10)).await;
        assert_eq!(batch, vec![0, 2, 6, 9]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_stops_at_its_size_or_at_the_end_of_the_stream() {
        let mut stream = arriving(&[1, 2, 3]);
        assert_eq!(
            gather(0, &mut stream, 2, Duration::from_secs(1)).await,
            vec![0, 1]
        );
        assert_eq!(
            gather(9, &mut stream, 64, Duration::from_secs(1)).await,
            vec![9, 2, 3]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_linger_takes_only_what_is_waiting() {
        let mut stream = arriving(&[0, 0, 5]);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            gather(9, &mut stream, 64, Duration::ZERO).await,
            vec![9, 0, 0]
        );
    }

    #[test]
    fn the_linger_waits_only_after_a_batch_of_more_than_one() {
        let longest = Duration::from_millis(10);
        let mut linger = Linger::new(longest);
        assert_eq!(linger.next(), Duration::ZERO, "before any batch");
        for (batch, wait) in [
            (1, Duration::ZERO),
            (2, longest),
            (64, longest),
            (1, Duration::ZERO),
            (3, longest),
        ] {
            linger.took(batch);
            assert_eq!(linger.next(), wait, "after a batch of {batch}");
        }
    }

    #[test]
    fn a_storage_error_is_kept_as_the_cause_of_a_handler_error() {
        let e = HandlerError::from(DbError::Decode("bad row".into()));
        let (HandlerError::Transient(cause) | HandlerError::Permanent(cause)) = &e;
        assert!(cause.downcast_ref::<DbError>().is_some(), "{e}");
        assert!(e.to_string().contains("bad row"));
    }

    #[test]
    fn permanent_errors_dead_letter_at_once() {
        let policy = RetryPolicy::default();
        let s = policy.settle(&HandlerError::permanent("bad schema"), 1);
        assert!(matches!(s, Settlement::DeadLetter { error } if error.contains("bad schema")));
    }

    #[test]
    fn transient_errors_retry_until_attempts_run_out() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let e = HandlerError::transient("db busy");
        assert!(matches!(policy.settle(&e, 1), Settlement::Retry { .. }));
        assert!(matches!(policy.settle(&e, 2), Settlement::Retry { .. }));
        assert!(matches!(
            policy.settle(&e, 3),
            Settlement::DeadLetter { .. }
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for attempt in 0..30 {
            let ceiling =
                Duration::from_millis(100 * (1u64 << attempt.min(20))).min(Duration::from_secs(1));
            assert!(policy.delay(attempt) <= ceiling);
        }
    }
}
