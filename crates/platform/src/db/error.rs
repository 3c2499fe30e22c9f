//! Storage errors and what each means for the caller ([`Fault`]), decided
//! here once for both backends so that no edge guesses.

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
