//! The deployment's settings, the same flags and variables for `agora run`
//! and `agora service`: what each service reads ([`Settings`]) and how
//! consumers retry.

use std::time::Duration;

use agora_platform::consumer::RetryPolicy;
use agora_platform::service::Settings;

use crate::limits::RetentionArgs;

/// Where the embedded app and the gateway listen unless told otherwise:
/// what users open, and so the default public URL
/// ([`agora_platform::events::DEFAULT_PUBLIC_URL`]).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(clap::Args, Debug, Clone)]
pub struct SettingsArgs {
    /// The embedded app's or the gateway's base URL as clients reach it:
    /// every event's `dataschema` is the absolute URI of its schema under
    /// it (`<URL>/schemas/events/<routing key>.json`).
    #[arg(long, env = "AGORA_PUBLIC_URL", default_value = agora_platform::events::DEFAULT_PUBLIC_URL)]
    pub public_url: String,
    /// Payments above this many minor units are declined (payment).
    #[arg(long, env = "AGORA_PAYMENT_DECLINE_ABOVE", default_value_t = 1_000_000)]
    pub payment_decline_above: i64,
    /// Do not seed the demo catalog on first start (catalog).
    #[arg(long, env = "AGORA_NO_SEED")]
    pub no_seed: bool,
    /// Seconds each saga step may take before the order is cancelled (order).
    #[arg(long, env = "AGORA_STEP_TIMEOUT_SECS", default_value_t = 30)]
    pub step_timeout_secs: u64,
    /// Seconds a stock reservation is held at most (inventory).
    #[arg(long, env = "AGORA_RESERVATION_TTL_SECS", default_value_t = 600)]
    pub reservation_ttl_secs: u64,
    /// Seconds an Idempotency-Key is remembered (order, cart).
    #[arg(long, env = "AGORA_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    pub idempotency_ttl_secs: u64,
    /// Turn off the order service's fast stock check (the saga alone decides).
    #[arg(long, env = "AGORA_NO_STOCK_CHECK")]
    pub no_stock_check: bool,
    /// Clients waiting at once in `GET /orders/{id}?wait_ms` (order); past
    /// it, the order is answered as it is, at once.
    #[arg(long, env = "AGORA_MAX_WAITERS", default_value_t = agora_order::DEFAULT_MAX_WAITERS)]
    pub max_waiters: usize,
    /// Attempts before a failing event goes to the dead-letter queue.
    #[arg(long, env = "AGORA_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    #[arg(long, env = "AGORA_RETRY_BASE_MS", default_value_t = 100)]
    pub retry_base_ms: u64,
    /// Seconds an access token is valid (identity).
    #[arg(long, env = "AGORA_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

impl SettingsArgs {
    /// What the services read.
    pub fn settings(&self) -> Settings {
        let idempotency_ttl = Duration::from_secs(self.idempotency_ttl_secs);
        Settings {
            step_timeout: Duration::from_secs(self.step_timeout_secs),
            reservation_ttl: Duration::from_secs(self.reservation_ttl_secs),
            idempotency_ttl,
            max_waiters: self.max_waiters,
            stock_check: !self.no_stock_check,
            payment_decline_above: self.payment_decline_above,
            seed_demo: !self.no_seed,
            keep: self.retention.keep(idempotency_ttl),
            access_token_ttl: Duration::from_secs(self.access_token_ttl_secs.max(1)),
        }
    }

    /// Makes `--public-url` the process's ([`agora_platform::events::set_public_url`]):
    /// called once at start, before any service is built.
    pub fn set_public_url(&self) -> anyhow::Result<()> {
        agora_platform::events::set_public_url(&self.public_url).map_err(anyhow::Error::msg)
    }

    /// How consumers retry a failing event.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base_delay: Duration::from_millis(self.retry_base_ms),
            ..RetryPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_public_url_is_where_the_app_and_the_gateway_listen_by_default() {
        assert_eq!(
            agora_platform::events::DEFAULT_PUBLIC_URL,
            format!("http://{DEFAULT_LISTEN}")
        );
    }
}
