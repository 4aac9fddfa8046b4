use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::crypto::KeyError;

use super::connection::ConnectError;

/// What can go wrong in the store. Messages name what is wrong and never
/// contain a credential.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("session_id is already used by another user")]
    SessionIdTaken,
    /// A stored value failed to decrypt: tampered, moved, or corrupt. Logged
    /// (where, never what) by whoever detects it.
    #[error("integrity check failed for {table}.{column}")]
    Integrity {
        table: &'static str,
        column: &'static str,
    },
    #[error("{0}")]
    Invalid(#[from] super::validate::Invalid),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database has no schema yet (or an older one): run `vibee-sessions migrate`")]
    NoSchema,
    #[error("database error: {0}")]
    Query(DieselError),
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, ref info)
                if info.constraint_name() == Some("user_sessions_session_id_key") =>
            {
                DbError::SessionIdTaken
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().starts_with("relation \"")
                    && info.message().ends_with("\" does not exist") =>
            {
                DbError::NoSchema
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => DbError::Unavailable(e.to_string()),
            // The server ended this connection (SQLSTATE 57P01-57P03: an
            // administrator, a crash of another backend, a shutdown). Pooled
            // connections are not pinged on checkout, so this is how a dead
            // one shows; the pool drops it and the next request reconnects.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().starts_with("terminating connection")
                    || info.message().starts_with("the database system is") =>
            {
                DbError::Unavailable(e.to_string())
            }
            other => DbError::Query(other),
        }
    }
}

impl From<ConnectError> for DbError {
    fn from(e: ConnectError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

impl From<deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>> for DbError {
    fn from(e: deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>) -> Self {
        DbError::Unavailable(e.to_string())
    }
}
