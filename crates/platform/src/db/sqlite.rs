//! SQLite's side: parameters bound by number, statements run inline.

use std::borrow::Cow;
use std::sync::Arc;

use super::{Cell, DbError, Row, Value};

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
pub(super) fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(sql.replace('$', "?"))
}

/// Statements each connection keeps compiled, least recently used out
/// first: every statement a service runs often fits, with room for the
/// common sizes of its batches.
pub(super) const STATEMENT_CACHE: usize = 64;

/// A statement binding more values than this is a batch (one row of
/// `VALUES` or one `IN` item per event), so its text changes with the
/// batch's size. It is compiled for each use instead of kept: its compile
/// is shared by its many rows. Keeping every statement (up to 256 on each
/// of the embedded mode's 36 connections) held 17 MB of the heap's 63 MB
/// peak over 30,000 orders, most of it one compiled program per batch size.
const CACHED_UP_TO_VALUES: usize = 32;

/// Runs `f` on `sql` compiled, from the connection's cache unless it is a
/// batch's (see [`CACHED_UP_TO_VALUES`]).
pub(super) fn with_statement<R>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
    f: impl FnOnce(&mut rusqlite::Statement<'_>) -> Result<R, DbError>,
) -> Result<R, DbError> {
    let sql = sqlite_sql(sql);
    if params.len() > CACHED_UP_TO_VALUES {
        f(&mut conn.prepare(&sql)?)
    } else {
        f(&mut *conn.prepare_cached(&sql)?)
    }
}

pub(super) fn sqlite_execute(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> Result<u64, DbError> {
    with_statement(conn, sql, params, |stmt| {
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    })
}

pub(super) fn sqlite_query(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, DbError> {
    with_statement(conn, sql, params, |stmt| rows_of(stmt, params))
}

fn rows_of(stmt: &mut rusqlite::Statement<'_>, params: &[Value]) -> Result<Vec<Row>, DbError> {
    // The names once for the statement, shared by its rows: the alias, or
    // the column's name, as on PostgreSQL.
    let names: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            use rusqlite::types::ValueRef;
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Int(v as i64),
                ValueRef::Text(v) => Cell::Text(String::from_utf8_lossy(v).into_owned()),
                ValueRef::Blob(_) => return Err(DbError::Decode(format!("column {name}: blob"))),
            });
        }
        out.push(Row::new(names.clone(), cells));
    }
    Ok(out)
}
