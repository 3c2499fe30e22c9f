//! The limits of every process kind as command-line flags: what a listener
//! accepts (the same for `agora run`, `agora service` and `agora
//! gateway`) and how long a service keeps what only grows (`agora run`
//! and `agora service`).

use std::time::Duration;

use agora_platform::retention::Keep;
use agora_platform::server::Limits;

#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Seconds a client may take to send a request's head (slowloris).
    #[arg(long, env = "AGORA_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request may take before it is answered 503 (above the
    /// longest `wait_ms`, 30 s).
    #[arg(long, env = "AGORA_REQUEST_TIMEOUT_SECS", default_value_t = 40)]
    pub request_timeout_secs: u64,
    /// Requests served at once; past it, 503 with Retry-After at once.
    #[arg(long, env = "AGORA_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
    /// Requests one client (IP address) may have in flight at once; past
    /// it, 429 with Retry-After at once. Default: 256 for `agora run` and
    /// `agora gateway`; for `agora service` its whole cap, since behind
    /// the gateway every request comes from the gateway.
    #[arg(long, env = "AGORA_MAX_REQUESTS_PER_CLIENT")]
    pub max_requests_per_client: Option<usize>,
    /// Requests per second one client (IP address) may make; past it, 429
    /// with Retry-After. 0 turns it off.
    #[arg(long, env = "AGORA_RATE_LIMIT", default_value_t = 10_000)]
    pub rate_limit: u32,
    /// Addresses of proxies (the gateway) whose `X-Forwarded-For` names the
    /// client: their requests count as that client's, for the per-client
    /// limits and the failed sign-ins. Repeatable, or comma-separated.
    #[arg(
        long = "trusted-proxy",
        env = "AGORA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl LimitArgs {
    /// The limits of a listener that faces clients (`agora run`, the
    /// gateway).
    pub fn limits(&self) -> Limits {
        self.limits_per_client(agora_platform::server::Limits::default().max_concurrent_per_client)
    }

    /// The limits of a service's listener, which the gateway's requests
    /// reach as one client.
    pub fn service_limits(&self) -> Limits {
        self.limits_per_client(self.max_concurrent_requests)
    }

    fn limits_per_client(&self, default_per_client: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_concurrent_requests: self.max_concurrent_requests.max(1),
            max_concurrent_per_client: self
                .max_requests_per_client
                .unwrap_or(default_per_client)
                .max(1),
            requests_per_second_per_client: self.rate_limit,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct RetentionArgs {
    /// Days a consumer remembers the events it handled: a redelivery within
    /// them has no second effect, and `agora events replay` replays only
    /// events younger than them.
    #[arg(long, env = "AGORA_INBOX_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub inbox_retention_days: u64,
    /// Days published events are kept in each service's event log.
    #[arg(long, env = "AGORA_EVENT_LOG_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub event_log_retention_days: u64,
    /// Days sent notifications are kept (notification).
    #[arg(long, env = "AGORA_NOTIFICATION_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub notification_retention_days: u64,
    /// Dead letters kept per service; past it, the oldest go.
    #[arg(long, env = "AGORA_DEAD_LETTER_MAX", default_value_t = agora_platform::dead_letters::DEFAULT_MAX)]
    pub dead_letter_max: u32,
}

impl RetentionArgs {
    /// What is kept, with idempotency keys for `idempotency_ttl`.
    pub fn keep(&self, idempotency_ttl: Duration) -> Keep {
        let days = |n: u64| Duration::from_secs(n.max(1) * 24 * 3600);
        Keep {
            idempotency_keys: idempotency_ttl,
            inbox: days(self.inbox_retention_days),
            event_log: days(self.event_log_retention_days),
            records: days(self.notification_retention_days),
        }
    }
}
