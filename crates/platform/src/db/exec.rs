//! Where a read runs, so that a store writes each read once: outside any
//! transaction (`&Db`: a reader connection on SQLite, the pool on
//! PostgreSQL) or inside one (`&mut Tx`: seeing what it wrote).

use super::{Db, DbError, Row, Tx, Value};

/// A connection to read from: `store::find(&db, id)` and
/// `store::find(&mut tx, id)` are one function taking `impl Into<Exec>`.
pub enum Exec<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Exec<'a> {
    fn from(db: &'a Db) -> Self {
        Exec::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for Exec<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Exec::Tx(tx)
    }
}

impl Exec<'_> {
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Exec::Db(db) => db.query(sql, params).await,
            Exec::Tx(tx) => tx.query(sql, params).await,
        }
    }

    pub async fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        match self {
            Exec::Db(db) => db.query_opt(sql, params).await,
            Exec::Tx(tx) => tx.query_opt(sql, params).await,
        }
    }

    /// As [`Exec::query`]; inside a transaction, the rows it queued for its
    /// commit ([`Tx::insert_at_commit`]) are written first, so that it reads
    /// them too.
    pub async fn query_written(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, DbError> {
        if let Exec::Tx(tx) = self {
            tx.write_queued_rows().await?;
        }
        self.query(sql, params).await
    }
}
