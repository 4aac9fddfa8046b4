//! Who holds what, read without changing anything: the live leases of a
//! page of sessions, the held/free counts of `stats`, and the boot loaders'
//! plan of every active session with its holder.

use std::collections::HashMap;

use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::{DbError, Lease};

/// The live lease of a session, row-locked until the caller's transaction
/// ends: no take or renewal changes it meanwhile.
pub async fn live_locked(
    conn: &mut AsyncPgConnection,
    session_id: &str,
) -> Result<Option<Lease>, DbError> {
    Ok(diesel::sql_query(
        "SELECT session_id, holder, fence, expires_at FROM session_leases \
         WHERE session_id = $1 AND expires_at > now() FOR UPDATE",
    )
    .bind::<Text, _>(session_id)
    .get_result(conn)
    .await
    .optional()?)
}

/// The live leases of the named sessions, by session id (for listings).
pub async fn live_for(
    conn: &mut AsyncPgConnection,
    session_ids: &[&str],
) -> Result<HashMap<String, Lease>, DbError> {
    if session_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let leases: Vec<Lease> = diesel::sql_query(
        "SELECT session_id, holder, fence, expires_at FROM session_leases \
         WHERE session_id = ANY($1) AND expires_at > now()",
    )
    .bind::<Array<Text>, _>(session_ids)
    .load(conn)
    .await?;
    Ok(leases
        .into_iter()
        .map(|l| (l.session_id.clone(), l))
        .collect())
}

/// Active sessions with and without a live lease (for `stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct LeaseCounts {
    /// Active sessions with a live lease.
    #[diesel(sql_type = BigInt)]
    pub held: i64,
    /// Active sessions nobody holds.
    #[diesel(sql_type = BigInt)]
    pub free: i64,
}

pub async fn counts(conn: &mut AsyncPgConnection) -> Result<LeaseCounts, DbError> {
    Ok(diesel::sql_query(
        "SELECT count(l.session_id) AS held, count(*) - count(l.session_id) AS free \
         FROM user_sessions s \
         LEFT JOIN session_leases l ON l.session_id = s.session_id AND l.expires_at > now() \
         WHERE s.is_active",
    )
    .get_result(conn)
    .await?)
}

/// An active session and who holds it, for a boot loader's plan.
#[derive(Debug, Clone, QueryableByName)]
pub struct Slot {
    #[diesel(sql_type = Text)]
    pub session_id: String,
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// The live holder, if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub holder: Option<String>,
}

/// Every active session in `user_id` order with its live holder.
pub async fn slots(conn: &mut AsyncPgConnection) -> Result<Vec<Slot>, DbError> {
    Ok(diesel::sql_query(
        "SELECT s.session_id, s.user_id, l.holder FROM user_sessions s \
         LEFT JOIN session_leases l ON l.session_id = s.session_id AND l.expires_at > now() \
         WHERE s.is_active ORDER BY s.user_id",
    )
    .load(conn)
    .await?)
}
