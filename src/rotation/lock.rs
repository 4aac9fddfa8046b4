//! One rotation at a time: a session-level advisory lock, held on the
//! rotation's own connection for its whole run. PostgreSQL releases it when
//! that connection ends, so a killed rotation never leaves it behind.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::DbError;

use super::progress::Progress;

/// "vibee-ro": distinct from the keys lock, which rotation also takes (briefly,
/// per transaction) while it holds this one.
pub const ROTATION_LOCK: i64 = 0x7669_6265_652d_726f;

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Takes the rotation lock, saying what it waits for when another process
/// holds it. Returns whether it had to wait.
pub async fn acquire(
    conn: &mut AsyncPgConnection,
    progress: &dyn Progress,
) -> Result<bool, DbError> {
    let got: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(ROTATION_LOCK)
        .get_result(conn)
        .await?;
    if got.locked {
        return Ok(false);
    }
    progress.say(&format!(
        "another rotation is running (it holds PostgreSQL advisory lock {ROTATION_LOCK}); \
         waiting for it to finish"
    ));
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(ROTATION_LOCK)
        .execute(conn)
        .await?;
    Ok(true)
}

pub async fn release(conn: &mut AsyncPgConnection) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(ROTATION_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}
