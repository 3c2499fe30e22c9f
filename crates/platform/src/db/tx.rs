//! Transactions on either backend, with what they carry to their commit:
//! outbox events, rows queued for one batched insert, notices, and work to
//! run once committed.

use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use super::checkpoint::Checkpointer;
use super::postgres::{bind_pg, pg_rows};
use super::sqlite::{sqlite_execute, sqlite_query};
use super::{DbError, OutboxSignal, Row, Value};

/// A transaction on either backend. Dropping it without [`Tx::commit`] rolls
/// back, so an error returned with `?` never leaves a half-written change.
pub struct Tx {
    inner: TxInner,
    /// The routing key of each event it wrote to the outbox.
    published: Vec<String>,
    outbox: Arc<OutboxSignal>,
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

pub(super) enum TxInner {
    Sqlite(SqliteTx),
    Postgres(Box<sqlx::Transaction<'static, sqlx::Postgres>>),
}

pub(super) struct SqliteTx {
    conn: OwnedMutexGuard<rusqlite::Connection>,
    open: bool,
    /// Told of the commit.
    checkpoint: Checkpointer,
}

impl SqliteTx {
    /// A transaction already begun on `conn`.
    pub(super) fn begun(
        conn: OwnedMutexGuard<rusqlite::Connection>,
        checkpoint: Checkpointer,
    ) -> SqliteTx {
        SqliteTx {
            conn,
            open: true,
            checkpoint,
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Tx {
    pub(super) fn new(inner: TxInner, outbox: Arc<OutboxSignal>) -> Tx {
        Tx {
            inner,
            published: Vec::new(),
            outbox,
            after_commit: Vec::new(),
            at_commit: Vec::new(),
            notices: Vec::new(),
        }
    }

    fn is_sqlite(&self) -> bool {
        matches!(self.inner, TxInner::Sqlite(_))
    }

    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => sqlite_execute(&tx.conn, sql, params),
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
                pg_rows(&rows)
            }
        }
    }

    pub async fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Marks that this transaction wrote an event with `routing_key` to the
    /// outbox, so that whoever takes it on is told when it commits.
    pub(crate) fn mark_outbox(&mut self, routing_key: &str) {
        self.published.push(routing_key.to_owned());
    }

    /// Whether the outbox is read as a queue, its events published as they
    /// commit.
    pub(crate) fn outbox_is_read(&self) -> bool {
        self.outbox.is_read()
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

    /// Updates `table`'s rows by `key`: each of `rows` holds the key, then
    /// one value per `guards` column (the row is written only if those
    /// columns still hold these values, as read), then one per `sets`
    /// column. Returns, per row, whether it was written. One statement for
    /// all on PostgreSQL (arrays unnested in the select list, as in
    /// [`Tx::insert_rows`]), one per row on SQLite, where statements cost
    /// microseconds and run under the one writer.
    pub async fn update_rows(
        &mut self,
        table: &str,
        key: &str,
        guards: &[&str],
        sets: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<Vec<bool>, DbError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (g, n) = (guards.len(), sets.len());
        if matches!(self.inner, TxInner::Sqlite(_)) {
            let assign: Vec<String> = sets
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ${}", 2 + g + i))
                .collect();
            let mut check = vec![format!("{key} = $1")];
            check.extend(
                guards
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ${}", 2 + i)),
            );
            let sql = format!(
                "UPDATE {table} SET {} WHERE {}",
                assign.join(", "),
                check.join(" AND ")
            );
            let mut written = Vec::with_capacity(rows.len());
            for row in rows {
                written.push(self.execute(&sql, row).await? == 1);
            }
            return Ok(written);
        }
        let mut columns = vec![format!("unnest($1) AS k")];
        columns.extend((0..g).map(|i| format!("unnest(${}) AS g{i}", 2 + i)));
        columns.extend((0..n).map(|i| format!("unnest(${}) AS s{i}", 2 + g + i)));
        let assign: Vec<String> = sets
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = v.s{i}"))
            .collect();
        let mut check = vec![format!("t.{key} = v.k")];
        check.extend(
            guards
                .iter()
                .enumerate()
                .map(|(i, c)| format!("t.{c} = v.g{i}")),
        );
        let sql = format!(
            "UPDATE {table} AS t SET {} FROM (SELECT {}) AS v WHERE {} RETURNING t.{key}",
            assign.join(", "),
            columns.join(", "),
            check.join(" AND ")
        );
        let returned = self.query_arrays(&sql, rows).await?;
        let written: std::collections::HashSet<String> = returned
            .iter()
            .map(|r| r.text(key))
            .collect::<Result<_, _>>()?;
        Ok(rows
            .iter()
            .map(|row| match row.first() {
                Some(Value::Text(Some(k))) => written.contains(k),
                Some(Value::Int(Some(k))) => written.contains(&k.to_string()),
                _ => false,
            })
            .collect())
    }

    /// What a `SELECT` of rows this transaction is about to update ends
    /// with, to lock them in `column` order (two transactions over the same
    /// rows lock them in one order, so neither waits for the other in a
    /// cycle): `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose one
    /// writer serialises transactions already.
    pub fn locking_in_order_of(&self, column: &str) -> String {
        match self.inner {
            TxInner::Sqlite(_) => String::new(),
            TxInner::Postgres(_) => format!(" ORDER BY {column} COLLATE \"C\" FOR UPDATE"),
        }
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

    /// Runs `sql` once for all of `rows` (PostgreSQL only: private to the
    /// storage layer, behind [`Tx::update_rows`]): parameter `$j`
    /// is bound to the array of every row's `j`-th value, typed by the
    /// first row, so `sql` reads the rows as
    /// `(SELECT unnest($1::TEXT[]) AS a, …)` (in the select list: see
    /// [`Tx::insert_rows`]). One statement, with the same text and plan,
    /// for any number of rows.
    async fn query_arrays(&mut self, sql: &str, rows: &[Vec<Value>]) -> Result<Vec<Row>, DbError> {
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
        pg_rows(&rows)
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
            published,
            outbox,
            after_commit,
            at_commit: _,
            notices: _,
        } = self;
        let backend = match inner {
            TxInner::Sqlite(mut tx) => {
                tx.conn.execute_batch("COMMIT")?;
                tx.open = false;
                tx.checkpoint.committed();
                "sqlite"
            }
            TxInner::Postgres(tx) => {
                tx.commit().await?;
                "postgres"
            }
        };
        crate::metrics::committed(backend);
        if !published.is_empty() {
            outbox.committed(&published);
        }
        for hook in after_commit {
            hook();
        }
        Ok(())
    }
}

/// `INSERT INTO t (cols) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING`.
pub(super) fn multi_row_insert(
    table: &str,
    columns: &str,
    rows: &[Vec<Value>],
) -> (String, Vec<Value>) {
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
