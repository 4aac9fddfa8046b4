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
    /// The session is deactivated: it serves no credentials and takes no
    /// writes until it is reactivated.
    #[error("the session is deactivated")]
    Inactive,
    /// A conditional write (`If-Match`) named a version that is not the
    /// session's current one.
    #[error("the session is at version {current}, not the one the write was conditional on")]
    VersionMismatch { current: i64 },
    /// A conditional write whose condition names no stored session state
    /// (`If-None-Match: *` on an existing session, `If-Match` on none).
    #[error("{0}")]
    PreconditionFailed(&'static str),
    /// A stored value failed to decrypt: tampered, moved, or corrupt. Logged
    /// (where, never what) by whoever detects it.
    #[error("integrity check failed for {table}.{column}")]
    Integrity {
        table: &'static str,
        column: &'static str,
    },
    /// A write that replaces what a lease holder uses, without the live
    /// lease's fence (`Lease-Fence`) while a lease is live.
    #[error("the session is leased: this write must carry the live fence")]
    LeaseRequired,
    /// A write carrying a fence that is not the live lease's.
    #[error("the fence is not the live lease's")]
    StaleFence,
    /// A purge of a session a live lease holds: its holder may still be
    /// running it. Deactivate it (the holder's loader lets go) or wait.
    #[error(
        "the session is leased by {} until {}: deactivate it (its holder lets go) \
         or wait for the lease to end, then purge",
        .0.holder, .0.expires_at.to_rfc3339()
    )]
    LeaseHeld(Box<super::leases::Lease>),
    #[error("{0}")]
    Invalid(#[from] crate::domain::validate::Invalid),
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The database refused a write sealed under a data key that is no
    /// longer `primary` or `active` (trigger `user_sessions_data_key_live`):
    /// this process's key ring is behind. Retried after a reload.
    #[error("the data key of this write is no longer live; the key ring is being reloaded")]
    StaleKey,
    /// This process cannot bring its key ring up to date (no successful
    /// reload for too long, or the keys are under a master key it does not
    /// hold), so it does not encrypt: another replica may serve.
    #[error("this server's key ring is stale: {0}")]
    KeyRingStale(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database has no schema yet (or an older one): run `vibee-sessions migrate`")]
    NoSchema,
    /// A migration failed to apply: the database answered, the schema change
    /// did not go through (and was rolled back).
    #[error("migration failed: {0}")]
    Migration(String),
    /// A write kept meeting concurrent writers and gave up; the caller may retry.
    #[error("{0}")]
    Conflict(&'static str),
    /// A task of ours (key derivation, the migration runner) failed or panicked.
    #[error("internal error: {0}")]
    Internal(String),
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
            DieselError::DatabaseError(_, ref info)
                if info.constraint_name() == Some("user_sessions_data_key_live") =>
            {
                DbError::StaleKey
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
            // SQLSTATE 25006: the server became read-only under us (a standby,
            // a demoted or fenced primary). The pool replaces every connection
            // opened before this (db::pool); the caller retries.
            DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => {
                super::pool::note_read_only();
                DbError::Unavailable(format!("the database server is read-only: {e}"))
            }
            // Timeouts, cancellations, and the server ending this connection
            // (SQLSTATE 57P01-57P03: an administrator, a crash of another
            // backend, a shutdown). Pooled connections are not pinged on
            // checkout, so this is how a dead one shows; the pool drops it and
            // the next request reconnects.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if is_transient(info.message())
                    || info.message().starts_with("terminating connection")
                    || info.message().starts_with("the database system is") =>
            {
                DbError::Unavailable(e.to_string())
            }
            other => DbError::Query(other),
        }
    }
}

/// Server messages that mean "the database is slow, busy or going away", not
/// "this query is wrong": a statement or lock timeout, an administrator
/// shutdown, a server starting up or shutting down. They are answered with a
/// 503 (retry), never a 500. diesel does not expose the SQLSTATE, so the
/// server's (English, `lc_messages` default) message is matched.
fn is_transient(message: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        "canceling statement due to statement timeout",
        "canceling statement due to lock timeout",
        "canceling statement due to user request",
        "could not obtain lock",
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "terminating connection due to idle-in-transaction timeout",
        // PgBouncer's own errors: no server connection to give (the
        // database is down, refusing logins, or the pooler is stopping).
        "query_wait_timeout",
        "server login has been failing",
        "pgbouncer cannot connect to server",
        "server conn crashed?",
        "server shutting down",
    ];
    TRANSIENT.iter().any(|t| message.starts_with(t))
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn db(kind: DatabaseErrorKind, message: &'static str) -> DbError {
        DieselError::DatabaseError(kind, Box::new(Info(message))).into()
    }

    /// Regression (seen in a chaos run): a lost connection or a statement
    /// cancelled by `statement_timeout` / `lock_timeout` was a 500; it is a 503.
    #[test]
    fn slow_or_lost_database_is_unavailable_not_a_query_error() {
        for (kind, message) in [
            (DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            (
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout",
            ),
            (
                DatabaseErrorKind::Unknown,
                "canceling statement due to lock timeout",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            (
                DatabaseErrorKind::ReadOnlyTransaction,
                "cannot execute INSERT in a read-only transaction",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to immediate shutdown command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection because of crash of another server process",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is not yet accepting connections",
            ),
        ] {
            assert!(
                matches!(db(kind, message), DbError::Unavailable(_)),
                "{message}"
            );
        }
        assert!(matches!(
            db(DatabaseErrorKind::Unknown, "syntax error at or near \"x\""),
            DbError::Query(_)
        ));
    }
}
