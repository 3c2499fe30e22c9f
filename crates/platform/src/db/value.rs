//! Statement parameters and result rows, the same on both backends.

use std::sync::Arc;

use uuid::Uuid;

use super::DbError;

/// A statement parameter. Typed even when null, because PostgreSQL needs to
/// know the type of a bound NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Int(None) | Value::Text(None))
    }
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

/// One result row, read by column name: the `SELECT`'s alias, or the
/// column's own name. Names, not positions, so that a column added to or
/// moved in a `SELECT` can never be read as its neighbour. Compared as SQL
/// compares unquoted identifiers, ignoring ASCII case, because PostgreSQL
/// reports them folded to lower case and SQLite as written. Two columns of
/// one name (a join's `a.id, b.id`) need an alias: the name reads the first.
#[derive(Debug, Clone)]
pub struct Row {
    /// The statement's column names, built once per statement and shared
    /// by all of its rows.
    columns: Arc<[String]>,
    cells: Vec<Cell>,
}

impl Row {
    /// A row of the statement whose columns are `columns`, one cell each.
    pub(super) fn new(columns: Arc<[String]>, cells: Vec<Cell>) -> Row {
        debug_assert_eq!(columns.len(), cells.len());
        Row { columns, cells }
    }

    fn cell(&self, column: &str) -> Result<&Cell, DbError> {
        self.columns
            .iter()
            .position(|name| name.eq_ignore_ascii_case(column))
            .and_then(|i| self.cells.get(i))
            .ok_or_else(|| DbError::Decode(format!("no column {column}")))
    }

    pub fn i64(&self, column: &str) -> Result<i64, DbError> {
        match self.cell(column)? {
            Cell::Int(v) => Ok(*v),
            other => Err(DbError::Decode(format!(
                "column {column}: expected integer, got {other:?}"
            ))),
        }
    }

    pub fn opt_i64(&self, column: &str) -> Result<Option<i64>, DbError> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            _ => self.i64(column).map(Some),
        }
    }

    pub fn str(&self, column: &str) -> Result<&str, DbError> {
        match self.cell(column)? {
            Cell::Text(v) => Ok(v),
            other => Err(DbError::Decode(format!(
                "column {column}: expected text, got {other:?}"
            ))),
        }
    }

    pub fn text(&self, column: &str) -> Result<String, DbError> {
        self.str(column).map(str::to_owned)
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, DbError> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            _ => self.text(column).map(Some),
        }
    }

    pub fn uuid(&self, column: &str) -> Result<Uuid, DbError> {
        let text = self.str(column)?;
        Uuid::parse_str(text).map_err(|e| DbError::Decode(format!("column {column}: {e}")))
    }

    /// Reads a JSON document stored as text.
    pub fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, DbError> {
        serde_json::from_str(self.str(column)?)
            .map_err(|e| DbError::Decode(format!("column {column}: {e}")))
    }
}
