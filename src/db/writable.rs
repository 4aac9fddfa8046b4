//! Whether a connection's server still takes writes. A LISTEN connection to
//! a server that turned read-only (a standby, a demoted or fenced primary)
//! stays open and answers pings, yet hears nothing again: the writes, and the
//! NOTIFYs they send, now happen on another server. The listeners ask on each
//! quiet wake-up and reconnect when the answer is yes, and
//! `target_session_attrs=read-write` then finds the writable server.

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::error::DbError;

/// The check; callers append an SQL comment naming themselves, so an
/// operator can tell their connection in `pg_stat_activity`.
pub(crate) const READ_ONLY_SQL: &str =
    "SELECT current_setting('transaction_read_only') AS read_only";

#[derive(QueryableByName)]
struct ReadOnly {
    #[diesel(sql_type = Text)]
    read_only: String,
}

/// `sql` is [`READ_ONLY_SQL`], with a comment at most.
pub(crate) async fn refuse_read_only(
    conn: &mut AsyncPgConnection,
    sql: &str,
    who: &str,
) -> Result<(), DbError> {
    debug_assert!(sql.starts_with(READ_ONLY_SQL));
    let row: ReadOnly = diesel::sql_query(sql).get_result(conn).await?;
    if row.read_only == "on" {
        return Err(DbError::Unavailable(format!(
            "the {who}'s server is read-only (a standby, or a demoted primary): it would hear \
             no change made on the primary; reconnecting"
        )));
    }
    Ok(())
}
