//! Storage that runs the same SQL against SQLite (embedded mode) and
//! PostgreSQL (distributed mode).
//!
//! Service code writes portable SQL with `$1`-style placeholders and a small
//! set of column types (`BIGINT`, `TEXT`), and sees rows as [`Row`]s of
//! [`Cell`]s. The backend is a configuration, not a rewrite.
//!
//! Why not sqlx for SQLite too: sqlx-sqlite sends every statement to a worker
//! thread and back, which caps one saga step (update + outbox + inbox) near
//! 3,000 transactions/s on a 2-core machine, while rusqlite called inline
//! reaches ~22,000 (measured on this 2-core machine). A SQLite statement in
//! WAL mode takes microseconds, so it runs inline on the async worker under a
//! lock instead of hopping threads. PostgreSQL goes through sqlx.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Column, Executor, Row as _, TypeInfo};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};
use uuid::Uuid;

/// A statement parameter. Typed even when null, because PostgreSQL needs to
/// know the type of a bound NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(Some(v.into()))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Text(Some(v.to_string()))
    }
}
impl From<&Uuid> for Value {
    fn from(v: &Uuid) -> Self {
        Value::Text(Some(v.to_string()))
    }
}

/// Builds a parameter slice: `params![id, name, 3]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::Value::from($value)),*]
    };
}

/// One column of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// One result row, read by column index in the order of the `SELECT`.
#[derive(Debug, Clone)]
pub struct Row(Vec<Cell>);

impl Row {
    fn cell(&self, index: usize) -> Result<&Cell, DbError> {
        self.0
            .get(index)
            .ok_or_else(|| DbError::Decode(format!("no column {index}")))
    }

    pub fn i64(&self, index: usize) -> Result<i64, DbError> {
        match self.cell(index)? {
            Cell::Int(v) => Ok(*v),
            other => Err(DbError::Decode(format!(
                "column {index}: expected integer, got {other:?}"
            ))),
        }
    }

    pub fn opt_i64(&self, index: usize) -> Result<Option<i64>, DbError> {
        match self.cell(index)? {
            Cell::Null => Ok(None),
            _ => self.i64(index).map(Some),
        }
    }

    pub fn str(&self, index: usize) -> Result<&str, DbError> {
        match self.cell(index)? {
            Cell::Text(v) => Ok(v),
            other => Err(DbError::Decode(format!(
                "column {index}: expected text, got {other:?}"
            ))),
        }
    }

    pub fn text(&self, index: usize) -> Result<String, DbError> {
        self.str(index).map(str::to_owned)
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, DbError> {
        match self.cell(index)? {
            Cell::Null => Ok(None),
            _ => self.text(index).map(Some),
        }
    }

    pub fn uuid(&self, index: usize) -> Result<Uuid, DbError> {
        let text = self.str(index)?;
        Uuid::parse_str(text).map_err(|e| DbError::Decode(format!("column {index}: {e}")))
    }

    /// Reads a JSON document stored as text.
    pub fn json<T: serde::de::DeserializeOwned>(&self, index: usize) -> Result<T, DbError> {
        serde_json::from_str(self.str(index)?)
            .map_err(|e| DbError::Decode(format!("column {index}: {e}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("decode: {0}")]
    Decode(String),
}

/// What a storage error means for the caller, decided here once for both
/// backends, so that the edge never guesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The storage does not answer (down, busy, connections exhausted, a
    /// transaction aborted to break a deadlock): worth retrying.
    Unavailable,
    /// A constraint refused the write (a unique key, a check).
    Conflict,
    /// The data itself cannot be stored (a value of the wrong kind, a
    /// character the database refuses, a number out of range): retrying
    /// the same request can never succeed.
    Data,
    /// Anything else: a fault of this program (SQL it got wrong, a row it
    /// cannot read back).
    Internal,
}

impl DbError {
    pub fn fault(&self) -> Fault {
        match self {
            DbError::Sqlite(e) => sqlite_fault(e),
            DbError::Postgres(e) => postgres_fault(e),
            DbError::Decode(_) => Fault::Internal,
        }
    }

    /// A unique or primary-key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(sqlx::Error::Database(e)) => e.code().as_deref() == Some("23505"),
            _ => false,
        }
    }
}

fn sqlite_fault(e: &rusqlite::Error) -> Fault {
    use rusqlite::ErrorCode::*;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ConstraintViolation => Fault::Conflict,
            TooBig | TypeMismatch => Fault::Data,
            DatabaseBusy
            | DatabaseLocked
            | CannotOpen
            | DiskFull
            | SystemIoFailure
            | OutOfMemory
            | FileLockingProtocolFailed
            | ReadOnly => Fault::Unavailable,
            _ => Fault::Internal,
        },
        rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::NulError(_) => Fault::Data,
        _ => Fault::Internal,
    }
}

/// By SQLSTATE class: 22 data exception (NUL in text, out of range, bad
/// encoding), 23 integrity violation, 08/40/53/57/58 connection, rollback
/// (serialization, deadlock), resources and operator intervention.
fn postgres_fault(e: &sqlx::Error) -> Fault {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref().map(|c| &c[..2.min(c.len())]) {
            Some("22") => Fault::Data,
            Some("23") => Fault::Conflict,
            Some("08" | "40" | "53" | "57" | "58") => Fault::Unavailable,
            _ => Fault::Internal,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Fault::Unavailable,
        sqlx::Error::Encode(_) => Fault::Data,
        _ => Fault::Internal,
    }
}

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
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// A handle to one service's database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    /// Woken after a commit that wrote to the outbox, so the relay publishes
    /// without polling delay.
    outbox_ready: Arc<Notify>,
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
            conn.set_prepared_statement_cache_capacity(256);
            conn.pragma_update(None, "journal_mode", "WAL")?;
            let sync = if synchronous_full { "FULL" } else { "NORMAL" };
            conn.pragma_update(None, "synchronous", sync)?;
            Ok(conn)
        };
        let writer = Arc::new(Mutex::new(open()?));
        let readers = (0..SQLITE_READERS)
            .map(|_| open().map(|c| Arc::new(Mutex::new(c))))
            .collect::<Result<_, _>>()?;
        Ok(Db {
            backend: Backend::Sqlite(Arc::new(SqliteDb {
                writer,
                readers,
                next_reader: AtomicUsize::new(0),
            })),
            outbox_ready: Arc::new(Notify::new()),
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
            outbox_ready: Arc::new(Notify::new()),
        })
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

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

    /// Notified after a commit that wrote events to the outbox.
    pub fn outbox_ready(&self) -> &Arc<Notify> {
        &self.outbox_ready
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
                        tx.execute_batch(m.sql)?;
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
                        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
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
                TxInner::Sqlite(SqliteTx { conn, open: true })
            }
            Backend::Postgres(pool) if durable => TxInner::Postgres(Box::new(pool.begin().await?)),
            Backend::Postgres(pool) => TxInner::Postgres(Box::new(
                pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off")
                    .await?,
            )),
        };
        Ok(Tx {
            inner,
            wrote_outbox: false,
            outbox_ready: self.outbox_ready.clone(),
            after_commit: Vec::new(),
            at_commit: Vec::new(),
            notices: Vec::new(),
        })
    }

    /// Runs a read outside any transaction (a reader connection on SQLite).
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let i = db.next_reader.fetch_add(1, Ordering::Relaxed) % db.readers.len();
                let conn = db.readers[i].lock().await;
                sqlite_query(&conn, sql, params)
            }
            Backend::Postgres(pool) => {
                let rows = bind_pg(sqlx::query(sql), params).fetch_all(pool).await?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    pub async fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
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
                    .query("SELECT current_setting('autovacuum')", &[])
                    .await?;
                Ok(on.first().map(|row| row.str(0)).transpose()? == Some("on"))
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

/// A transaction on either backend. Dropping it without [`Tx::commit`] rolls
/// back, so an error returned with `?` never leaves a half-written change.
pub struct Tx {
    inner: TxInner,
    wrote_outbox: bool,
    outbox_ready: Arc<Notify>,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
    at_commit: Vec<QueuedRow>,
    /// `(channel, payload)` for other processes, sent with the commit.
    notices: Vec<(&'static str, String)>,
}

/// A row queued by [`Tx::insert_at_commit`].
struct QueuedRow {
    table: &'static str,
    columns: &'static str,
    values: Vec<Value>,
}

/// The most parameters one statement binds (PostgreSQL allows 65,535,
/// SQLite 32,766).
const MAX_PARAMS: usize = 30_000;

enum TxInner {
    Sqlite(SqliteTx),
    Postgres(Box<sqlx::Transaction<'static, sqlx::Postgres>>),
}

struct SqliteTx {
    conn: OwnedMutexGuard<rusqlite::Connection>,
    open: bool,
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Tx {
    pub fn is_sqlite(&self) -> bool {
        matches!(self.inner, TxInner::Sqlite(_))
    }

    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => {
                let mut stmt = tx.conn.prepare_cached(&sqlite_sql(sql))?;
                let changed = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
                Ok(changed as u64)
            }
            TxInner::Postgres(tx) => Ok(bind_pg(sqlx::query(sql), params)
                .execute(&mut ***tx)
                .await?
                .rows_affected()),
        }
    }

    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => sqlite_query(&tx.conn, sql, params),
            TxInner::Postgres(tx) => {
                let rows = bind_pg(sqlx::query(sql), params)
                    .fetch_all(&mut ***tx)
                    .await?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    pub async fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Marks that this transaction wrote to the outbox, so the relay is woken
    /// when it commits.
    pub(crate) fn mark_outbox(&mut self) {
        self.wrote_outbox = true;
    }

    /// Runs `hook` once this transaction has committed (never if it rolls
    /// back): how in-process watchers learn about a change only when it is
    /// visible to them.
    pub fn after_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(hook));
    }

    /// Tells other processes listening on `channel` ([`Db::listen`]) about
    /// this transaction's change, when (and only if) it commits: how the
    /// watchers of one instance learn what another instance did. PostgreSQL
    /// only (`NOTIFY`); on SQLite there is one process, and
    /// [`Tx::after_commit`] reaches every watcher.
    pub fn notify_at_commit(&mut self, channel: &'static str, payload: String) {
        if !self.is_sqlite() {
            self.notices.push((channel, payload));
        }
    }

    /// Queues a row for `table` (`columns` as in an `INSERT`, comma
    /// separated), written just before the transaction commits with the other
    /// rows queued for the same table and columns: one statement for many
    /// rows instead of one round trip each. For rows that nothing in the
    /// transaction reads, or whose reader calls [`Tx::write_queued_rows`]
    /// first (events, history); a row that exists already is skipped
    /// (`ON CONFLICT DO NOTHING`).
    pub fn insert_at_commit(
        &mut self,
        table: &'static str,
        columns: &'static str,
        values: Vec<Value>,
    ) {
        self.at_commit.push(QueuedRow {
            table,
            columns,
            values,
        });
    }

    /// Inserts `rows` (each with one value per column of `columns`) into
    /// `table` in one statement, skipping rows that exist already, and
    /// returns the `returning` columns of the rows it inserted. PostgreSQL
    /// gets one array per column through `unnest`, so the statement's text
    /// (and its prepared plan) is the same for any number of rows.
    ///
    /// The arrays are unnested in the select list, never as
    /// `FROM unnest(a, b, …)`: that form copies each array into its own
    /// tuplestore (16 KB apiece), enough per statement to make a backend
    /// grow and trim its heap every time, and each trim (`brk`) costs a TLB
    /// shootdown across the cores (7.5 % of this machine's CPU under load).
    /// Both forms pair the arrays' elements up the same way.
    pub async fn insert_rows(
        &mut self,
        table: &str,
        columns: &str,
        rows: &[Vec<Value>],
        returning: Option<&str>,
    ) -> Result<Vec<Row>, DbError> {
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let returning = returning.map_or(String::new(), |r| format!(" RETURNING {r}"));
        match &mut self.inner {
            TxInner::Sqlite(_) => {
                let mut out = Vec::new();
                for chunk in rows.chunks((MAX_PARAMS / first.len().max(1)).max(1)) {
                    let (sql, values) = multi_row_insert(table, columns, chunk);
                    out.extend(self.query(&format!("{sql}{returning}"), &values).await?);
                }
                Ok(out)
            }
            TxInner::Postgres(_) => {
                let arrays: Vec<String> = (1..=first.len())
                    .zip(first)
                    .map(|(i, v)| match v {
                        Value::Int(_) => format!("unnest(${i}::BIGINT[])"),
                        Value::Text(_) => format!("unnest(${i}::TEXT[])"),
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO {table} ({columns}) SELECT {} ON CONFLICT DO NOTHING{returning}",
                    arrays.join(", ")
                );
                self.query_arrays(&sql, rows).await
            }
        }
    }

    /// Runs `sql` once for all of `rows` (PostgreSQL only): parameter `$j`
    /// is bound to the array of every row's `j`-th value, typed by the
    /// first row, so `sql` reads the rows as
    /// `(SELECT unnest($1::TEXT[]) AS a, …)` (in the select list: see
    /// [`Tx::insert_rows`]). One statement, with the same text and plan,
    /// for any number of rows.
    pub async fn query_arrays(
        &mut self,
        sql: &str,
        rows: &[Vec<Value>],
    ) -> Result<Vec<Row>, DbError> {
        let TxInner::Postgres(tx) = &mut self.inner else {
            return Err(DbError::Decode(
                "query_arrays binds arrays, which only PostgreSQL has".into(),
            ));
        };
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let mut query = sqlx::query(sql);
        for (j, v) in first.iter().enumerate() {
            let column = rows.iter().map(|row| row.get(j));
            query = match v {
                Value::Int(_) => query.bind(
                    column
                        .map(|v| match v {
                            Some(Value::Int(v)) => Ok(*v),
                            other => Err(mixed_column(j, other)),
                        })
                        .collect::<Result<Vec<Option<i64>>, _>>()?,
                ),
                Value::Text(_) => query.bind(
                    column
                        .map(|v| match v {
                            Some(Value::Text(v)) => Ok(v.clone()),
                            other => Err(mixed_column(j, other)),
                        })
                        .collect::<Result<Vec<Option<String>>, _>>()?,
                ),
            };
        }
        let rows = query.fetch_all(&mut ***tx).await?;
        rows.iter().map(pg_row).collect()
    }

    /// Writes the rows queued by [`Tx::insert_at_commit`] now, one statement
    /// per table and columns: for a reader of those rows inside this
    /// transaction. [`Tx::commit`] does it otherwise.
    pub async fn write_queued_rows(&mut self) -> Result<(), DbError> {
        let mut by_table: std::collections::BTreeMap<_, Vec<Vec<Value>>> = Default::default();
        for row in std::mem::take(&mut self.at_commit) {
            // Rows of one table keep their order.
            by_table
                .entry((row.table, row.columns))
                .or_default()
                .push(row.values);
        }
        for ((table, columns), rows) in by_table {
            self.insert_rows(table, columns, &rows, None).await?;
        }
        Ok(())
    }

    /// Sends the notices queued by [`Tx::notify_at_commit`]: one statement
    /// per channel, whatever their number.
    async fn send_notices(&mut self) -> Result<(), DbError> {
        let mut by_channel: std::collections::BTreeMap<_, Vec<String>> = Default::default();
        for (channel, payload) in std::mem::take(&mut self.notices) {
            by_channel.entry(channel).or_default().push(payload);
        }
        for (channel, payloads) in by_channel {
            if let TxInner::Postgres(tx) = &mut self.inner {
                sqlx::query("SELECT pg_notify($1, unnest($2::TEXT[]))")
                    .bind(channel)
                    .bind(payloads)
                    .execute(&mut ***tx)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn commit(mut self) -> Result<(), DbError> {
        self.write_queued_rows().await?;
        self.send_notices().await?;
        let Tx {
            inner,
            wrote_outbox,
            outbox_ready,
            after_commit,
            at_commit: _,
            notices: _,
        } = self;
        match inner {
            TxInner::Sqlite(mut tx) => {
                tx.conn.execute_batch("COMMIT")?;
                tx.open = false;
            }
            TxInner::Postgres(tx) => tx.commit().await?,
        }
        if wrote_outbox {
            outbox_ready.notify_one();
        }
        for hook in after_commit {
            hook();
        }
        Ok(())
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

/// `INSERT INTO t (cols) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING`.
fn multi_row_insert(table: &str, columns: &str, rows: &[Vec<Value>]) -> (String, Vec<Value>) {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    let mut values = Vec::with_capacity(rows.iter().map(Vec::len).sum());
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("({})", placeholders(values.len() + 1, row.len())));
        values.extend(row.iter().cloned());
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    (sql, values)
}

/// `$first, $first+1, …`, `count` of them: the parameters of an `IN (…)`
/// list or of one row of `VALUES (…)`.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mixed_column(column: usize, value: Option<&Value>) -> DbError {
    DbError::Decode(format!(
        "column {column} mixes types or lengths across rows ({value:?})"
    ))
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Int(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Int(None) | Value::Text(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// Rewrites `$1` placeholders to SQLite's `?1`, which binds by number.
fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(sql.replace('$', "?"))
}

fn sqlite_query(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, DbError> {
    let mut stmt = conn.prepare_cached(&sqlite_sql(sql))?;
    let columns = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(columns);
        for i in 0..columns {
            use rusqlite::types::ValueRef;
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Int(v as i64),
                ValueRef::Text(v) => Cell::Text(String::from_utf8_lossy(v).into_owned()),
                ValueRef::Blob(_) => return Err(DbError::Decode(format!("column {i}: blob"))),
            });
        }
        out.push(Row(cells));
    }
    Ok(out)
}

fn bind_pg<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: &'q [Value],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for p in params {
        query = match p {
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_deref()),
        };
    }
    query
}

fn pg_row(row: &PgRow) -> Result<Row, DbError> {
    let mut cells = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        let cell = match column.type_info().name() {
            "INT8" => row.try_get::<Option<i64>, _>(i)?.map(Cell::Int),
            "INT4" => row
                .try_get::<Option<i32>, _>(i)?
                .map(|v| Cell::Int(v.into())),
            "INT2" => row
                .try_get::<Option<i16>, _>(i)?
                .map(|v| Cell::Int(v.into())),
            "BOOL" => row
                .try_get::<Option<bool>, _>(i)?
                .map(|v| Cell::Int(v.into())),
            "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => {
                row.try_get::<Option<String>, _>(i)?.map(Cell::Text)
            }
            other => {
                return Err(DbError::Decode(format!(
                    "column {i}: unsupported type {other}"
                )))
            }
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

/// Creates the database `options` names unless it exists. A first
/// connection goes to that database itself, so that a role allowed to
/// reach only its own database (as a deployment should give each
/// service) never needs the server's `postgres` database; only when it is
/// missing (3D000) does a second one create it from there.
async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), DbError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    match sqlx::ConnectOptions::connect(options).await {
        Ok(conn) => {
            let _ = sqlx::Connection::close(conn).await;
            return Ok(());
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {}
        Err(e) => return Err(e.into()),
    }
    let admin = options.clone().database("postgres");
    let mut conn = sqlx::ConnectOptions::connect(&admin).await?;
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await?
        .is_some();
    if !exists {
        let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = conn.execute(create.as_str()).await {
            // Another instance created it first: PostgreSQL says so with
            // duplicate_database, or, when both were checking the catalog at
            // the same moment, with a unique violation on pg_database.
            let raced = matches!(&e, sqlx::Error::Database(d)
                if matches!(d.code().as_deref(), Some("42P04" | "23505")));
            if !raced {
                return Err(e.into());
            }
        }
    }
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

/// Drops a PostgreSQL database (tests clean up after themselves with this).
pub async fn drop_postgres_database(url: &str) -> Result<(), DbError> {
    let options = PgConnectOptions::from_str(url)?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let admin = options.database("postgres");
    let mut conn = sqlx::ConnectOptions::connect(&admin).await?;
    let drop = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        name.replace('"', "\"\"")
    );
    conn.execute(drop.as_str()).await?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn placeholders_are_rewritten_for_sqlite() {
        assert_eq!(sqlite_sql("SELECT $1, $2"), "SELECT ?1, ?2");
        assert!(matches!(sqlite_sql("SELECT 1"), Cow::Borrowed(_)));
    }
}
