//! SQLite's checkpoints, moved off the commit path.
//!
//! In WAL mode with `synchronous=NORMAL` a commit only appends to the WAL;
//! the `fsync`s come when the WAL is copied back into the database file (a
//! checkpoint). SQLite's automatic checkpoint runs inside the commit that
//! takes the WAL past 1,000 pages. The embedded mode runs SQLite inline on
//! an async worker while holding the service's one writer, so that commit
//! stalled every write of the service, and one of the runtime's workers,
//! for the checkpoint's two `fsync`s: up to 49 ms on this 2-core machine,
//! the tail of an order that otherwise takes a few milliseconds.
//!
//! Here a thread per database, with its own connection, checkpoints
//! instead. A commit wakes it; it waits [`GATHER`] for more commits, then
//! copies the WAL without taking the writer, so writes go on meanwhile.
//! SQLite starts the WAL over only once every page in it has been copied,
//! which writes made during the copy prevent; so once the WAL has grown
//! past [`CATCH_UP_PAGES`], the thread catches up: it copies what was
//! written during its checkpoint while holding the writer, which is then
//! short, and the next write starts the WAL over. The writer keeps an
//! automatic checkpoint, at [`WRITER_FALLBACK_PAGES`], for the case this
//! thread falls behind.
//!
//! Each checkpoint's time is `agora_db_checkpoint_seconds`, by database,
//! with `writer="held"` for the catch-ups every write waited for.
//!
//! Measured here (4,000 orders, then 1,500 at half that rate, in turn
//! with the automatic checkpoint): full load 688-783 against 610-643
//! orders/s, its p99 112-143 against 173-196 ms. The wait is short on
//! purpose: waiting 250 ms or 1 s copied fewer pages, but in bursts whose
//! I/O took the half-load p99 to 56-110 ms.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::DbError;

/// How long a checkpoint waits, after the commit that woke it, for more.
const GATHER: Duration = Duration::from_millis(50);

/// The WAL's size, in pages, from which a checkpoint copies the pages
/// written during it while holding the writer (2,048 pages of 4 KiB: 8 MiB).
const CATCH_UP_PAGES: i64 = 2_048;

/// The writer's own automatic checkpoint: only reached if the thread falls
/// behind (40 MiB of WAL).
pub(super) const WRITER_FALLBACK_PAGES: i64 = 10_000;

/// Wakes a database's checkpoint thread. The thread ends once every
/// `Checkpointer` of its database is dropped.
#[derive(Clone)]
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread that checkpoints on `conn`, a connection of its
    /// own to the database; `writer` is the connection every write holds.
    pub(super) fn start(
        writer: &Arc<Mutex<rusqlite::Connection>>,
        conn: rusqlite::Connection,
    ) -> Result<Checkpointer, DbError> {
        // It copies from the WAL to the file: no page cache to speak of.
        conn.pragma_update(None, "cache_size", -64)?;
        let (wake, woken) = sync_channel(1);
        let writer = Arc::downgrade(writer);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, writer, woken))
            .map_err(|e| DbError::Decode(format!("the checkpoint thread: {e}")))?;
        Ok(Checkpointer { wake })
    }

    /// After a commit: the thread checkpoints within [`GATHER`].
    pub(super) fn committed(&self) {
        // Full: it is already woken.
        let _ = self.wake.try_send(());
    }
}

fn run(conn: rusqlite::Connection, writer: Weak<Mutex<rusqlite::Connection>>, woken: Receiver<()>) {
    let warn = |e: rusqlite::Error| {
        tracing::warn!(error = %e, "a SQLite checkpoint failed; the next commit retries");
    };
    let database = conn
        .path()
        .and_then(|path| std::path::Path::new(path).file_stem())
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let timed = |writer: &'static str| {
        let started = Instant::now();
        let wal = checkpoint(&conn).map_err(warn);
        crate::metrics::checkpointed(&database, writer, started.elapsed());
        wal
    };
    while woken.recv().is_ok() {
        std::thread::sleep(GATHER);
        let _ = woken.try_recv();
        let Ok(wal) = timed("free") else {
            continue;
        };
        if wal <= CATCH_UP_PAGES {
            continue;
        }
        // Catching up: what was written during that copy, holding the
        // writer, so that the WAL is copied to its end.
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let _writing = writer.blocking_lock();
        let _ = timed("held");
    }
}

/// Copies what it can of the WAL into the database without waiting for
/// anyone; returns the WAL's size in pages when it began. Pages written
/// while it copies are not copied, and SQLite reports none of them.
fn checkpoint(conn: &rusqlite::Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}
