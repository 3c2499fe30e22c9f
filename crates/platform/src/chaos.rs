//! Chaos switches for demonstrations and fault tests, all off by default and
//! set from the environment when a process starts:
//!
//! | variable | effect |
//! |---|---|
//! | `AGORA_CHAOS_PAYMENT_DECLINE_RATE` | share of payments the gateway declines (0.0–1.0) |
//! | `AGORA_CHAOS_HANDLER_DELAY_MS` | pause before each batch of events is handled |
//! | `AGORA_CHAOS_DUPLICATE_RATE` | share of events delivered twice |
//! | `AGORA_CHAOS_CRASH_BEFORE_ACK_RATE` | share of handled batches after which the process dies before acknowledging |
//! | `AGORA_CHAOS_CONSUMER_PANIC_RATE` | share of fetched batches on which the consumer task panics before handling them (it is supervised: started again) |
//!
//! They are process-wide by nature (a crash takes the whole process), so
//! they live in one global set once at start.

use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chaos {
    pub payment_decline_rate: f64,
    pub handler_delay: Duration,
    pub duplicate_rate: f64,
    pub crash_before_ack_rate: f64,
    pub consumer_panic_rate: f64,
}

static CHAOS: OnceLock<Chaos> = OnceLock::new();

impl Chaos {
    /// Reads the switches from the environment; a malformed value is an error.
    pub fn from_env() -> anyhow::Result<Chaos> {
        fn rate(name: &str) -> anyhow::Result<f64> {
            match std::env::var(name) {
                Err(_) => Ok(0.0),
                Ok(v) => {
                    let r: f64 = v
                        .parse()
                        .map_err(|_| anyhow::anyhow!("{name}={v} is not a number"))?;
                    anyhow::ensure!(
                        (0.0..=1.0).contains(&r),
                        "{name}={v} is not between 0 and 1"
                    );
                    Ok(r)
                }
            }
        }
        let delay = match std::env::var("AGORA_CHAOS_HANDLER_DELAY_MS") {
            Err(_) => 0,
            Ok(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("AGORA_CHAOS_HANDLER_DELAY_MS={v} is not a number"))?,
        };
        Ok(Chaos {
            payment_decline_rate: rate("AGORA_CHAOS_PAYMENT_DECLINE_RATE")?,
            handler_delay: Duration::from_millis(delay),
            duplicate_rate: rate("AGORA_CHAOS_DUPLICATE_RATE")?,
            crash_before_ack_rate: rate("AGORA_CHAOS_CRASH_BEFORE_ACK_RATE")?,
            consumer_panic_rate: rate("AGORA_CHAOS_CONSUMER_PANIC_RATE")?,
        })
    }

    pub fn is_off(&self) -> bool {
        *self == Chaos::default()
    }
}

/// Installs the switches for this process (once; later calls are ignored).
pub fn install(chaos: Chaos) {
    if !chaos.is_off() {
        tracing::warn!(?chaos, "chaos switches are on");
    }
    let _ = CHAOS.set(chaos);
}

/// The switches in force (all off unless installed).
pub fn get() -> &'static Chaos {
    CHAOS.get_or_init(Chaos::default)
}

/// True with probability `rate`.
pub fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

/// Called after a batch is committed and before it is acknowledged: with
/// the configured probability the process dies right there, the worst
/// moment for a consumer (effects committed, messages not acknowledged).
pub fn maybe_crash_before_ack() {
    if roll(get().crash_before_ack_rate) {
        tracing::error!("chaos: crashing before the acknowledgement");
        // Like a kill -9: no destructor, no graceful shutdown (and unlike
        // abort(), no core dump left behind).
        std::process::exit(137);
    }
}

/// Called when a consumer holds a batch it has not handled: with the
/// configured probability its task panics there (its deliveries are not
/// acknowledged, so they come again once the task is started again).
pub fn maybe_panic_in_consumer() {
    if roll(get().consumer_panic_rate) {
        panic!("chaos: the consumer panics holding a batch");
    }
}

/// Called before a batch is handled.
pub async fn handler_delay() {
    let delay = get().handler_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
