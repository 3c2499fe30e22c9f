//! Long-running work that must not end by accident: a task that panics is
//! started again (after a pause that grows, so a task that panics at once
//! cannot spin), and each restart is counted for `/ready`. A consumer
//! whose task died used to leave its queue unread for good while the
//! process still answered "ready".

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What `/ready` shows of a supervised task.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    running: AtomicBool,
    restarts: AtomicU64,
    last_panic: Mutex<Option<String>>,
}

impl Supervised {
    pub fn new(name: impl Into<String>) -> Arc<Supervised> {
        Arc::new(Supervised {
            name: name.into(),
            running: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            last_panic: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the task runs now (false between a panic and its restart).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// How often the task was started again after a panic.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// What the last panic said, for the logs' reader.
    pub fn last_panic(&self) -> Option<String> {
        self.last_panic.lock().expect("panic note lock").clone()
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs the task `start` makes until it returns or `shutdown`; when it
/// panics, counts it in `status`, waits (100 ms, doubling up to 10 s, back
/// to 100 ms once a run lasted a minute) and starts a new one.
pub async fn supervise<F, Fut>(status: Arc<Supervised>, shutdown: CancellationToken, start: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        status.running.store(true, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let run = tokio::spawn(start()).await;
        status.running.store(false, Ordering::Relaxed);
        let Err(failed) = run else { return };
        if !failed.is_panic() {
            return;
        }
        let message = panic_message(&*failed.into_panic());
        let restarts = status.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(task = %status.name, panic = %message, restarts, "a supervised task panicked; starting it again");
        *status.last_panic.lock().expect("panic note lock") = Some(message);
        if started.elapsed() > Duration::from_secs(60) {
            pause = Duration::from_millis(100);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_started_again_and_counted() {
        let status = Supervised::new("flaky");
        let runs = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let supervisor = {
            let (status, runs, shutdown) = (status.clone(), runs.clone(), shutdown.clone());
            tokio::spawn(supervise(status, shutdown.clone(), move || {
                let (runs, shutdown) = (runs.clone(), shutdown.clone());
                async move {
                    if runs.fetch_add(1, Ordering::Relaxed) < 2 {
                        panic!("boom");
                    }
                    shutdown.cancelled().await;
                }
            }))
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(status.restarts(), 2);
        assert!(status.is_running());
        assert_eq!(status.last_panic().as_deref(), Some("boom"));
        shutdown.cancel();
        supervisor.await.unwrap();
        assert!(!status.is_running());
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_is_not_started_again() {
        let status = Supervised::new("done");
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervise(status.clone(), CancellationToken::new(), move || {
            let runs = counted.clone();
            async move {
                runs.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
        assert_eq!((runs.load(Ordering::Relaxed), status.restarts()), (1, 0));
    }
}
