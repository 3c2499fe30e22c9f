//! The listener limits of every process kind, as command-line flags (the
//! same for `agora run`, `agora service` and `agora gateway`).

use std::time::Duration;

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
    /// Requests per second one client (IP address) may make; past it, 429
    /// with Retry-After. 0 turns it off.
    #[arg(long, env = "AGORA_RATE_LIMIT", default_value_t = 10_000)]
    pub rate_limit: u32,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_concurrent_requests: self.max_concurrent_requests.max(1),
            requests_per_second_per_client: self.rate_limit,
        }
    }
}
