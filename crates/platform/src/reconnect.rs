//! How a long-running task waits after losing its connection (the broker,
//! the database's notice listener, the outbox relay's publish): exponential
//! backoff with jitter, from backon, started afresh once it works again.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// The shortest wait, after a first loss.
const FIRST: Duration = Duration::from_millis(200);
/// The longest wait before jitter, reached after five losses in a row.
const LONGEST: Duration = Duration::from_millis(3_200);

/// The waits of one task between its attempts to reconnect.
pub struct Reconnect {
    delays: ExponentialBackoff,
}

fn delays() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_jitter()
        .without_max_times()
        .build()
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect { delays: delays() }
    }
}

impl Reconnect {
    /// The wait before the next attempt: doubling from 200 ms to 3.2 s,
    /// each with up to as much again at random, so that the instances that
    /// lost one server do not all come back at the same moment.
    fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(LONGEST)
    }

    /// Waits before the next attempt, or until `shutdown`, after telling
    /// `report` how long (for the task's own warning).
    pub async fn pause(&mut self, shutdown: &CancellationToken, report: impl FnOnce(Duration)) {
        let delay = self.next_delay();
        report(delay);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// The connection works again: the next loss starts from the shortest
    /// wait.
    pub fn succeeded(&mut self) {
        self.delays = delays();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_cap_and_start_over_after_a_success() {
        let mut reconnect = Reconnect::default();

        let waits: Vec<Duration> = (0..8).map(|_| reconnect.next_delay()).collect();
        reconnect.succeeded();
        let after_success = reconnect.next_delay();

        for (i, wait) in waits.iter().enumerate() {
            let base = (FIRST * 2u32.pow(i as u32)).min(LONGEST);
            assert!(
                *wait >= base && *wait <= base * 2,
                "wait {i}: {wait:?} not within {base:?} and twice that"
            );
        }
        assert!(after_success >= FIRST && after_success <= FIRST * 2);
    }
}
