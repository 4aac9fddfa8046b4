//! The operators' monitoring figures, shared by `vibee-sessions stats` and
//! `GET /api/v1/stats`. Counts and timestamps only: never a secret.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::error::DbError;
use crate::crypto::DataKeyId;

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
    #[schema(value_type = i32)]
    pub data_key_id: DataKeyId,
    #[diesel(sql_type = BigInt)]
    pub sessions: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// When these figures were computed (the computing process's clock,
    /// taken before its first query): every change committed before it is
    /// counted. The API serves a shared copy up to `STATS_MAX_AGE_SECS` old.
    pub as_of: DateTime<Utc>,
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

/// One data key's share of the table: every figure of `stats` over
/// `user_sessions` comes from one scan, grouped by key and summed here
/// (three scans before: the counts, the newest `last_seen_at` and the
/// per-key counts each read the whole table).
#[derive(QueryableByName)]
struct KeyShare {
    #[diesel(sql_type = Integer)]
    data_key_id: DataKeyId,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    active: i64,
    #[diesel(sql_type = BigInt)]
    authorized: i64,
    #[diesel(sql_type = BigInt)]
    inactive: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_seen_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Latest {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_activity_at: Option<DateTime<Utc>>,
}

pub async fn stats(conn: &mut AsyncPgConnection) -> Result<Stats, DbError> {
    let as_of = Utc::now();
    let shares = diesel::sql_query(
        "SELECT data_key_id, count(*) AS total, \
                count(*) FILTER (WHERE is_active) AS active, \
                count(*) FILTER (WHERE is_active AND is_authorized) AS authorized, \
                count(*) FILTER (WHERE NOT is_active) AS inactive, \
                max(last_seen_at) AS last_seen_at \
         FROM user_sessions GROUP BY data_key_id ORDER BY data_key_id",
    )
    .load::<KeyShare>(conn)
    .await?;
    let mut counts = Counts {
        total: 0,
        active: 0,
        authorized: 0,
        unauthorized: 0,
        inactive: 0,
    };
    let mut last_seen_at = None;
    for k in &shares {
        counts.total += k.total;
        counts.active += k.active;
        counts.authorized += k.authorized;
        counts.inactive += k.inactive;
        last_seen_at = last_seen_at.max(k.last_seen_at);
    }
    counts.unauthorized = counts.active - counts.authorized;
    let sessions_per_data_key = shares
        .iter()
        .map(|k| KeyUsage {
            data_key_id: k.data_key_id,
            sessions: k.total,
        })
        .collect();
    // The newest audit row: one step down its created_at index.
    let latest =
        diesel::sql_query("SELECT max(created_at) AS last_activity_at FROM session_activity")
            .get_result::<Latest>(conn)
            .await?;
    let leases = super::leases::counts(conn).await?;
    Ok(Stats {
        as_of,
        leases,
        sessions: counts,
        last_seen_at,
        last_activity_at: latest.last_activity_at,
        sessions_per_data_key,
    })
}
