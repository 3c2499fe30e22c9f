//! A circuit breaker for synchronous calls between services.
//!
//! Closed, it lets calls through and counts consecutive failures (errors or
//! timeouts); at the threshold it opens and refuses calls at once, so a
//! struggling dependency is not hammered and callers degrade instead of
//! waiting. After a cool-down it half-opens and lets one probe through:
//! success closes it, failure opens it again. Transitions are logged and the
//! state is shown on `/ready`.
//!
//! Written here rather than taken from a crate because it is small, and
//! what is needed is exactly this state machine with its state observable
//! and tokio's (pausable) clock; the circuit-breaker crates on crates.io
//! bring their own policy and future-adapter layers for much the same.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BreakerError<E> {
    #[error("circuit open")]
    Open,
    #[error("timed out")]
    TimedOut,
    #[error("{0}")]
    Failed(E),
}

pub struct Breaker {
    name: &'static str,
    threshold: u32,
    open_for: Duration,
    call_timeout: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(
        name: &'static str,
        threshold: u32,
        open_for: Duration,
        call_timeout: Duration,
    ) -> Self {
        Breaker {
            name,
            threshold: threshold.max(1),
            open_for,
            call_timeout,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// "closed", "open" or "half-open".
    pub fn state(&self) -> &'static str {
        match *self.state.lock().expect("breaker lock") {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }

    /// Runs `call` if the breaker allows it, within the call timeout.
    pub async fn call<T, E, F, Fut>(&self, call: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if !self.allow() {
            return Err(BreakerError::Open);
        }
        match tokio::time::timeout(self.call_timeout, call()).await {
            Ok(Ok(value)) => {
                self.record(true);
                Ok(value)
            }
            Ok(Err(e)) => {
                self.record(false);
                Err(BreakerError::Failed(e))
            }
            Err(_) => {
                self.record(false);
                Err(BreakerError::TimedOut)
            }
        }
    }

    fn allow(&self) -> bool {
        let mut state = self.state.lock().expect("breaker lock");
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen { probing: true };
                tracing::info!(breaker = self.name, "circuit half-open: probing");
                true
            }
            State::Open { .. } | State::HalfOpen { probing: true } => false,
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
        }
    }

    fn record(&self, ok: bool) {
        let mut state = self.state.lock().expect("breaker lock");
        let open = State::Open {
            until: Instant::now() + self.open_for,
        };
        *state = match (*state, ok) {
            (State::Closed { .. }, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 >= self.threshold => {
                tracing::warn!(breaker = self.name, failures = failures + 1, "circuit open");
                open
            }
            (State::Closed { failures }, false) => State::Closed {
                failures: failures + 1,
            },
            (State::HalfOpen { .. }, true) => {
                tracing::info!(breaker = self.name, "circuit closed");
                State::Closed { failures: 0 }
            }
            (State::HalfOpen { .. }, false) => {
                tracing::warn!(breaker = self.name, "probe failed: circuit open again");
                open
            }
            // A call that started before the breaker opened.
            (current @ State::Open { .. }, _) => current,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new("test", 3, Duration::from_secs(10), Duration::from_secs(1))
    }

    async fn fail(b: &Breaker) -> BreakerError<&'static str> {
        b.call(|| async { Err::<(), _>("down") }).await.unwrap_err()
    }

    async fn succeed(b: &Breaker) -> Result<(), BreakerError<&'static str>> {
        b.call(|| async { Ok::<_, &'static str>(()) }).await
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_repeated_failures_and_refuses_at_once() {
        let b = breaker();
        for _ in 0..3 {
            assert_eq!(fail(&b).await, BreakerError::Failed("down"));
        }
        assert_eq!(b.state(), "open");
        assert_eq!(succeed(&b).await, Err(BreakerError::Open));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        fail(&b).await;
        fail(&b).await;
        succeed(&b).await.unwrap();
        fail(&b).await;
        assert_eq!(b.state(), "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn half_opens_after_the_cool_down_and_closes_on_a_good_probe() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b).await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        succeed(&b).await.unwrap();
        assert_eq!(b.state(), "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b).await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        fail(&b).await;
        assert_eq!(b.state(), "open");
        assert_eq!(succeed(&b).await, Err(BreakerError::Open));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_count_as_failures() {
        let b = breaker();
        for _ in 0..3 {
            let slow = b
                .call(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok::<_, &'static str>(())
                })
                .await;
            assert_eq!(slow, Err(BreakerError::TimedOut));
        }
        assert_eq!(b.state(), "open");
    }
}
