//! Periodic background work of a service (deadline sweeps, expiries), run
//! the same way in both modes and stopped with the rest on shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

#[async_trait]
pub trait Periodic: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn every(&self) -> Duration;
    /// One pass; returns how many things it acted on.
    async fn run_once(&self) -> anyhow::Result<usize>;
}

/// Runs `task` every `task.every()` until `shutdown`; a failing pass is
/// logged and tried again next time.
pub async fn run_periodic(task: Arc<dyn Periodic>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match task.run_once().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(task = task.name(), acted_on = n, "periodic pass"),
            Err(e) => tracing::warn!(task = task.name(), error = %e, "periodic pass failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(task.every()) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
