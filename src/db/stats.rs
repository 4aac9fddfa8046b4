//! The operators' monitoring figures, shared by `vibee-sessions stats` and
//! `GET /api/v1/stats`. Counts and timestamps only: never a secret.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::error::DbError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct Counts {
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub active: i64,
    /// Active and authorized with Telegram.
    #[diesel(sql_type = BigInt)]
    pub authorized: i64,
    /// Active, not (yet) authorized.
    #[diesel(sql_type = BigInt)]
    pub unauthorized: i64,
    #[diesel(sql_type = BigInt)]
    pub inactive: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct KeyUsage {
    #[diesel(sql_type = Integer)]
    pub data_key_id: i32,
    #[diesel(sql_type = BigInt)]
    pub sessions: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub sessions: Counts,
    /// The newest `last_seen_at` of any session (an agent booted or reported in).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The newest audit log entry.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Sessions (active or not) per data key, by key id; rotation drains
    /// every key but the primary to zero.
    pub sessions_per_data_key: Vec<KeyUsage>,
    /// Active sessions held by a live lease, and free.
    pub leases: super::leases::LeaseCounts,
}

#[derive(QueryableByName)]
struct Latest {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_seen_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_activity_at: Option<DateTime<Utc>>,
}

pub async fn stats(conn: &mut AsyncPgConnection) -> Result<Stats, DbError> {
    let counts = diesel::sql_query(
        "SELECT count(*) AS total, \
                count(*) FILTER (WHERE is_active) AS active, \
                count(*) FILTER (WHERE is_active AND is_authorized) AS authorized, \
                count(*) FILTER (WHERE is_active AND NOT is_authorized) AS unauthorized, \
                count(*) FILTER (WHERE NOT is_active) AS inactive \
         FROM user_sessions",
    )
    .get_result::<Counts>(conn)
    .await?;
    let latest = diesel::sql_query(
        "SELECT (SELECT max(last_seen_at) FROM user_sessions) AS last_seen_at, \
                (SELECT max(created_at) FROM session_activity) AS last_activity_at",
    )
    .get_result::<Latest>(conn)
    .await?;
    let sessions_per_data_key = diesel::sql_query(
        "SELECT data_key_id, count(*) AS sessions FROM user_sessions \
         GROUP BY data_key_id ORDER BY data_key_id",
    )
    .load::<KeyUsage>(conn)
    .await?;
    let leases = super::leases::counts(conn).await?;
    Ok(Stats {
        leases,
        sessions: counts,
        last_seen_at: latest.last_seen_at,
        last_activity_at: latest.last_activity_at,
        sessions_per_data_key,
    })
}
