//! PostgreSQL's side: parameters bound through sqlx, rows converted, and
//! the database created when missing.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Column, Executor, Row as _, TypeInfo};

use super::{Cell, DbError, Row, Value};

pub(super) fn bind_pg<'q>(
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

/// Converts a result's rows, with the column names read once from the
/// first row and shared by all of them (every row of a result has the same
/// columns).
pub(super) fn pg_rows(rows: &[PgRow]) -> Result<Vec<Row>, DbError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter().map(|row| pg_row(row, &names)).collect()
}

fn pg_row(row: &PgRow, names: &Arc<[String]>) -> Result<Row, DbError> {
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
                    "column {}: unsupported type {other}",
                    column.name()
                )))
            }
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row::new(names.clone(), cells))
}

/// Creates the database `options` names unless it exists. A first
/// connection goes to that database itself, so that a role allowed to
/// reach only its own database (as a deployment should give each
/// service) never needs the server's `postgres` database; only when it is
/// missing (3D000) does a second one create it from there.
pub(super) async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), DbError> {
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
