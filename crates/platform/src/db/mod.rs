//! Storage that runs the same SQL against SQLite (embedded mode) and
//! PostgreSQL (distributed mode).
//!
//! Service code writes portable SQL with `$1`-style placeholders and a small
//! set of column types (`BIGINT`, `TEXT`), and sees rows as [`Row`]s of
//! [`Cell`]s, read by column name (both backends name a column by its alias
//! or its own name). The backend is a configuration, not a rewrite.
//!
//! Why not sqlx for SQLite too: sqlx-sqlite sends every statement to a worker
//! thread and back, which caps one saga step (update + outbox + inbox) near
//! 3,000 transactions/s on a 2-core machine, while rusqlite called inline
//! reaches ~22,000 (measured on this 2-core machine). A SQLite statement in
//! WAL mode takes microseconds, so it runs inline on the async worker under a
//! lock instead of hopping threads. PostgreSQL goes through sqlx.
//!
//! The storage layer, one concern a module: [`value`] (parameters and
//! rows), [`error`] (what a storage error means, decided once), this module
//! (configuration, pools, migrations, reads), [`tx`] (transactions and the
//! batched writes), [`notify`] (PostgreSQL notices), and the two backends'
//! own code in `sqlite` and `postgres`. Nothing outside it branches on the
//! backend.

mod checkpoint;
mod conditions;
mod error;
mod exec;
mod notify;
mod postgres;
mod sqlite;
mod tx;
mod value;

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Executor;
use tokio::sync::{Mutex, Notify};

pub use conditions::Conditions;
pub use error::{DbError, Fault};
pub use exec::Exec;
pub use postgres::drop_postgres_database;
pub use tx::{placeholders, Tx};
pub use value::{Cell, Row, Value};

use checkpoint::Checkpointer;
use postgres::{bind_pg, create_database_if_missing, pg_rows};
use sqlite::sqlite_query;
use tx::{SqliteTx, TxInner};

/// Which storage engine, and where.
#[derive(Debug, Clone)]
pub enum DbConfig {
    /// A SQLite file in WAL mode. `synchronous_full` trades speed for
    /// durability across power loss; a killed process loses nothing either way.
    Sqlite {
        path: std::path::PathBuf,
        synchronous_full: bool,
    },
    /// A PostgreSQL database, created if missing.
    Postgres { url: String, max_connections: u32 },
}

/// A migration: portable DDL, applied once and recorded in `schema_migrations`.
///
/// Where the backends need different DDL (SQLite cannot change a column in
/// place, so it rebuilds the table), one migration still keeps its SQL in
/// one file, for both: a line `-- backend: sqlite` or `-- backend: postgres`
/// starts SQL that only that backend runs, up to the next such line; what
/// comes before the first runs on both.
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// The line that starts a migration's SQL for one backend alone.
const BACKEND_MARK: &str = "-- backend:";

impl Migration {
    /// What `backend` (`sqlite` or `postgres`) runs of this migration. A
    /// mark naming no backend is an error rather than SQL that silently
    /// runs nowhere.
    fn sql_for(&self, backend: &str) -> Result<Cow<'static, str>, DbError> {
        if !self.sql.contains(BACKEND_MARK) {
            return Ok(Cow::Borrowed(self.sql));
        }
        let mut sql = String::with_capacity(self.sql.len());
        let mut ours = true;
        for line in self.sql.lines() {
            match line.trim().strip_prefix(BACKEND_MARK).map(str::trim) {
                Some(marked @ ("sqlite" | "postgres")) => ours = marked == backend,
                Some(other) => {
                    return Err(DbError::Decode(format!(
                        "migration {}: unknown backend {other:?}",
                        self.name
                    )))
                }
                None if ours => {
                    sql.push_str(line);
                    sql.push('\n');
                }
                None => {}
            }
        }
        Ok(Cow::Owned(sql))
    }
}

/// What [`Db::pool_usage`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// Told, after a commit that wrote events, their routing keys.
pub(crate) type OutboxReader = Arc<dyn Fn(&[String]) + Send + Sync>;

/// Who is told of a commit that wrote events to the outbox.
#[derive(Default)]
pub(crate) struct OutboxSignal {
    /// The relay, which hands them to a transport.
    ready: Notify,
    /// Or the embedded bus, when it reads the outbox as a queue: told the
    /// routing keys written.
    reader: RwLock<Option<OutboxReader>>,
}

impl OutboxSignal {
    /// Whether the outbox is read as a queue: its events are published as
    /// they commit.
    pub(crate) fn is_read(&self) -> bool {
        self.reader.read().expect("outbox reader lock").is_some()
    }

    /// After a commit that wrote events with `routing_keys` (one per event).
    pub(crate) fn committed(&self, routing_keys: &[String]) {
        match &*self.reader.read().expect("outbox reader lock") {
            Some(reader) => {
                for key in routing_keys {
                    crate::outbox::count_published_key(key);
                }
                reader(routing_keys)
            }
            None => self.ready.notify_one(),
        }
    }
}

/// A handle to one service's database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    /// Told of a commit that wrote to the outbox, so its events move on
    /// without polling delay.
    outbox: Arc<OutboxSignal>,
    /// Reads run outside a transaction: what a request that only reads
    /// costs the storage (the GraphQL loaders are measured by it).
    reads: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqliteDb>),
    Postgres(sqlx::PgPool),
}

struct SqliteDb {
    writer: Arc<Mutex<rusqlite::Connection>>,
    readers: Vec<Arc<Mutex<rusqlite::Connection>>>,
    next_reader: AtomicUsize,
    checkpoint: Checkpointer,
}

const SQLITE_READERS: usize = 3;

impl Db {
    pub async fn connect(config: &DbConfig) -> Result<Db, DbError> {
        match config {
            DbConfig::Sqlite {
                path,
                synchronous_full,
            } => Self::open_sqlite(path, *synchronous_full),
            DbConfig::Postgres {
                url,
                max_connections,
            } => Self::connect_postgres(url, *max_connections).await,
        }
    }

    pub fn open_sqlite(path: &Path, synchronous_full: bool) -> Result<Db, DbError> {
        let open = || -> Result<rusqlite::Connection, DbError> {
            let conn = rusqlite::Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.set_prepared_statement_cache_capacity(sqlite::STATEMENT_CACHE);
            conn.pragma_update(None, "journal_mode", "WAL")?;
            let sync = if synchronous_full { "FULL" } else { "NORMAL" };
            conn.pragma_update(None, "synchronous", sync)?;
            Ok(conn)
        };
        let writer = open()?;
        // Checkpoints are the checkpoint thread's; the writer's own only if
        // that thread falls far behind.
        writer.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_FALLBACK_PAGES,
        )?;
        let writer = Arc::new(Mutex::new(writer));
        let readers = (0..SQLITE_READERS)
            .map(|_| open().map(|c| Arc::new(Mutex::new(c))))
            .collect::<Result<_, _>>()?;
        let checkpoint = Checkpointer::start(&writer, open()?)?;
        Ok(Db {
            backend: Backend::Sqlite(Arc::new(SqliteDb {
                writer,
                readers,
                next_reader: AtomicUsize::new(0),
                checkpoint,
            })),
            outbox: Arc::default(),
            reads: Arc::default(),
        })
    }

    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<Db, DbError> {
        let options = PgConnectOptions::from_str(url)?;
        create_database_if_missing(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // A ping before every checkout is one more round trip per
            // transaction; a dead connection shows up on first use instead,
            // as a transient error that the caller retries, and sqlx drops it.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Db {
            backend: Backend::Postgres(pool),
            outbox: Arc::default(),
            reads: Arc::default(),
        })
    }

    /// Connections open and in use now, and the most there may be: on
    /// SQLite the writer and the readers (in use while locked).
    pub fn pool_usage(&self) -> PoolUsage {
        match &self.backend {
            Backend::Sqlite(db) => {
                let connections = std::iter::once(&db.writer).chain(db.readers.iter());
                let busy = connections.filter(|c| c.try_lock().is_err()).count();
                PoolUsage {
                    in_use: busy as u32,
                    idle: (1 + db.readers.len() - busy) as u32,
                    max: 1 + db.readers.len() as u32,
                }
            }
            Backend::Postgres(pool) => {
                let idle = pool.num_idle() as u32;
                PoolUsage {
                    in_use: pool.size().saturating_sub(idle),
                    idle,
                    max: pool.options().get_max_connections(),
                }
            }
        }
    }

    /// For the outbox relay's two strategies (see `outbox::relay_once`);
    /// no service branches on the backend.
    pub(crate) fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    /// Notified after a commit that wrote events to the outbox, unless the
    /// outbox is read as a queue.
    pub fn outbox_ready(&self) -> &Notify {
        &self.outbox.ready
    }

    /// Has the outbox read as its subscribers' queue (the embedded bus):
    /// from now on an event counts as published when it commits, and
    /// `reader` is told, after each commit that wrote events, their routing
    /// keys.
    pub(crate) fn read_outbox_as_queue(&self, reader: OutboxReader) {
        *self.outbox.reader.write().expect("outbox reader lock") = Some(reader);
    }

    /// Applies each set of migrations in order, each migration once. Safe to
    /// call from several instances at once on PostgreSQL.
    pub async fn migrate(&self, sets: &[&[Migration]]) -> Result<(), DbError> {
        let all = sets.iter().flat_map(|set| set.iter());
        match &self.backend {
            Backend::Sqlite(db) => {
                let mut conn = db.writer.lock().await;
                let tx = conn.transaction()?;
                tx.execute_batch(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
                )?;
                for m in all {
                    let done: bool = tx
                        .prepare("SELECT 1 FROM schema_migrations WHERE name = ?1")?
                        .exists([m.name])?;
                    if !done {
                        tx.execute_batch(&m.sql_for("sqlite")?)?;
                        tx.execute(
                            "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                            [m.name, &crate::clock::now_rfc3339()],
                        )?;
                    }
                }
                tx.commit()?;
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Serialises concurrent starts of several instances.
                tx.execute("SELECT pg_advisory_xact_lock(727272)").await?;
                tx.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
                )
                .await?;
                for m in all {
                    let done = sqlx::query("SELECT 1 FROM schema_migrations WHERE name = $1")
                        .bind(m.name)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if !done {
                        let sql = m.sql_for("postgres")?;
                        sqlx::raw_sql(&sql).execute(&mut *tx).await?;
                        sqlx::query(
                            "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)",
                        )
                        .bind(m.name)
                        .bind(crate::clock::now_rfc3339())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Starts a transaction. On SQLite it holds the single writer until it
    /// commits or is dropped (which rolls back).
    pub async fn begin(&self) -> Result<Tx, DbError> {
        self.begin_as(true).await
    }

    /// Starts a transaction that commits without waiting for its WAL to
    /// reach disk (PostgreSQL `synchronous_commit = off`, set in the same
    /// round trip as `BEGIN`; SQLite already commits without fsync in WAL
    /// mode). Only for writes whose loss in a crash is harmless, such as
    /// marking outbox rows published: a lost mark means a repeated publish,
    /// which consumers' inboxes absorb.
    pub async fn begin_relaxed(&self) -> Result<Tx, DbError> {
        self.begin_as(false).await
    }

    async fn begin_as(&self, durable: bool) -> Result<Tx, DbError> {
        let inner = match &self.backend {
            Backend::Sqlite(db) => {
                let conn = db.writer.clone().lock_owned().await;
                conn.execute_batch("BEGIN IMMEDIATE")?;
                TxInner::Sqlite(SqliteTx::begun(conn, db.checkpoint.clone()))
            }
            Backend::Postgres(pool) if durable => TxInner::Postgres(Box::new(pool.begin().await?)),
            Backend::Postgres(pool) => TxInner::Postgres(Box::new(
                pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off")
                    .await?,
            )),
        };
        Ok(Tx::new(inner, self.outbox.clone()))
    }

    /// Runs a read outside any transaction (a reader connection on SQLite).
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.query_unmetered(sql, params).await
    }

    /// [`Db::query`], left out of [`Db::reads`]: the embedded bus reading
    /// an outbox is not the service reading.
    pub(crate) async fn query_unmetered(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, DbError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let i = db.next_reader.fetch_add(1, Ordering::Relaxed) % db.readers.len();
                let conn = db.readers[i].lock().await;
                sqlite_query(&conn, sql, params)
            }
            Backend::Postgres(pool) => {
                let rows = bind_pg(sqlx::query(sql), params).fetch_all(pool).await?;
                pg_rows(&rows)
            }
        }
    }

    pub async fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// How many reads [`Db::query`] has run since this database was opened.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }

    /// Whether the server vacuums this database by itself (PostgreSQL's
    /// `autovacuum`); SQLite needs no vacuum to reuse space: true.
    pub async fn vacuums_itself(&self) -> Result<bool, DbError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(true),
            Backend::Postgres(_) => {
                let on = self
                    .query("SELECT current_setting('autovacuum') AS autovacuum", &[])
                    .await?;
                Ok(on.first().map(|row| row.str("autovacuum")).transpose()? == Some("on"))
            }
        }
    }

    /// Vacuums the whole database now, and refreshes the planner's
    /// statistics if `analyze` (PostgreSQL; nothing to do on SQLite).
    pub async fn vacuum(&self, analyze: bool) -> Result<(), DbError> {
        if let Backend::Postgres(pool) = &self.backend {
            let sql = if analyze {
                "VACUUM (ANALYZE)"
            } else {
                "VACUUM"
            };
            sqlx::raw_sql(sql).execute(pool).await?;
        }
        Ok(())
    }

    /// Closes a PostgreSQL pool; SQLite connections close when dropped.
    pub async fn close(&self) {
        if let Backend::Postgres(pool) = &self.backend {
            pool.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite::sqlite_sql;
    use super::tx::multi_row_insert;
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn rows_become_one_multi_row_insert() {
        let row = |id: &str| vec![Value::from(id), Value::from(1i64)];
        let (sql, values) = multi_row_insert("t", "id, n", &[row("a"), row("b")]);
        assert_eq!(
            sql,
            "INSERT INTO t (id, n) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(values.len(), 4);
        assert_eq!(values[2], Value::from("b"));
    }

    #[test]
    fn a_migration_runs_what_is_common_and_its_backends_own_sql() {
        let m = Migration {
            name: "m",
            sql: "CREATE TABLE a (x TEXT);\n-- backend: postgres\nALTER TABLE a ALTER COLUMN x DROP NOT NULL;\n  -- backend: sqlite  \nCREATE TABLE b (x TEXT);\n",
        };
        assert_eq!(
            m.sql_for("postgres").unwrap(),
            "CREATE TABLE a (x TEXT);\nALTER TABLE a ALTER COLUMN x DROP NOT NULL;\n"
        );
        assert_eq!(
            m.sql_for("sqlite").unwrap(),
            "CREATE TABLE a (x TEXT);\nCREATE TABLE b (x TEXT);\n"
        );
        let portable = Migration {
            name: "p",
            sql: "CREATE TABLE a (x TEXT)",
        };
        assert!(matches!(
            portable.sql_for("sqlite").unwrap(),
            Cow::Borrowed(_)
        ));
        let typo = Migration {
            name: "t",
            sql: "-- backend: sqlit\nSELECT 1",
        };
        assert!(typo
            .sql_for("sqlite")
            .unwrap_err()
            .to_string()
            .contains("sqlit"));
    }

    #[test]
    fn placeholders_are_rewritten_for_sqlite() {
        assert_eq!(sqlite_sql("SELECT $1, $2"), "SELECT ?1, ?2");
        assert!(matches!(sqlite_sql("SELECT 1"), Cow::Borrowed(_)));
    }
}
