//! PostgreSQL notices between instances of one service (`LISTEN`), for
//! news that must not wait for a poll.

use super::{Backend, Db};

impl Db {
    /// Calls `on_notice` with the payload of every notice sent on `channel`
    /// by [`Tx::notify_at_commit`] in any process, until `shutdown`. Runs on
    /// its own connection and listens again after losing it (what was sent
    /// meanwhile is missed: listeners must not depend on every notice). On
    /// SQLite there is nobody else to hear from: returns at once.
    pub async fn listen(
        &self,
        channel: &str,
        on_notice: impl Fn(&str),
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let Backend::Postgres(pool) = &self.backend else {
            return;
        };
        let mut reconnect = crate::reconnect::Reconnect::default();
        while !shutdown.is_cancelled() {
            let error = tokio::select! {
                e = notices(pool, channel, &on_notice, &mut reconnect) => e,
                _ = shutdown.cancelled() => return,
            };
            reconnect
                .pause(&shutdown, |delay| {
                    tracing::warn!(channel, error = %error, retry_in_ms = delay.as_millis() as u64, "lost the notice listener; listening again");
                })
                .await;
        }
    }
}

/// Hands every notice on `channel` to `on_notice` until the listener fails
/// for good (sqlx reconnects it once by itself); returns why.
async fn notices(
    pool: &sqlx::PgPool,
    channel: &str,
    on_notice: &impl Fn(&str),
    reconnect: &mut crate::reconnect::Reconnect,
) -> sqlx::Error {
    let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(e) => return e,
    };
    if let Err(e) = listener.listen(channel).await {
        return e;
    }
    reconnect.succeeded();
    loop {
        match listener.recv().await {
            Ok(notice) => on_notice(notice.payload()),
            Err(e) => return e,
        }
    }
}
