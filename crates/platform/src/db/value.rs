//! Statement parameters and result rows, the same on both backends.

use uuid::Uuid;

use super::DbError;

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
pub struct Row(pub(super) Vec<Cell>);

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
