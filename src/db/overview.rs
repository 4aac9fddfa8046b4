//! Figures the operator console draws: audit events per hour, lease holders
//! with their tenants, the master key's kind. Counts and names only.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::error::DbError;

/// Audit events in one hour.
#[derive(Debug, Clone, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct HourCount {
    /// The start of the hour (UTC).
    #[diesel(sql_type = Timestamptz)]
    pub hour: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub events: i64,
}

/// The last 24 hours, oldest first, every hour present (zero when quiet).
pub async fn hourly_activity(conn: &mut AsyncPgConnection) -> Result<Vec<HourCount>, DbError> {
    Ok(diesel::sql_query(
        "WITH hours AS (SELECT generate_series(date_trunc('hour', now()) - interval '23 hours', \
                                               date_trunc('hour', now()), interval '1 hour') AS hour) \
         SELECT h.hour, count(a.id) AS events FROM hours h \
         LEFT JOIN session_activity a \
           ON a.created_at >= h.hour AND a.created_at < h.hour + interval '1 hour' \
         GROUP BY h.hour ORDER BY h.hour",
    )
    .load(conn)
    .await?)
}

/// A boot loader (or any lease holder) and how many tenants it holds.
#[derive(Debug, Clone, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct HolderView {
    #[diesel(sql_type = Text)]
    pub holder: String,
    /// Its last heartbeat; null for a holder that takes leases without one.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub seen_at: Option<DateTime<Utc>>,
    /// When its heartbeat runs out.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Its heartbeat is live.
    #[diesel(sql_type = Bool)]
    pub live: bool,
    /// Sessions it holds a live lease on.
    #[diesel(sql_type = BigInt)]
    pub tenants: i64,
}

/// Every holder with a heartbeat row (live or lately dead) or a live lease.
pub async fn holders(conn: &mut AsyncPgConnection) -> Result<Vec<HolderView>, DbError> {
    Ok(diesel::sql_query(
        "WITH held AS (SELECT holder, count(*) AS n FROM session_leases \
                       WHERE expires_at > now() GROUP BY holder) \
         SELECT coalesce(h.holder, held.holder) AS holder, h.seen_at, h.expires_at, \
                coalesce(h.expires_at > now(), false) AS live, coalesce(held.n, 0) AS tenants \
         FROM lease_holders h FULL JOIN held ON held.holder = h.holder \
         ORDER BY 1",
    )
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Kdf {
    #[diesel(sql_type = Nullable<Text>)]
    algorithm: Option<String>,
}

/// How the master key is made: `passphrase (<kdf>)` when the database holds
/// KDF parameters, else `key` (a 256-bit key from the environment or a file).
pub async fn master_kind(conn: &mut AsyncPgConnection) -> Result<String, DbError> {
    let kdf: Kdf =
        diesel::sql_query("SELECT (SELECT algorithm FROM master_key_kdf LIMIT 1) AS algorithm")
            .get_result(conn)
            .await?;
    Ok(match kdf.algorithm {
        Some(algorithm) => format!("passphrase ({algorithm})"),
        None => "key".to_owned(),
    })
}
