//! Leases: one live holder per session, decided by the database clock.
//!
//! Every change is one statement, so a lease can never be half-taken: the
//! take (insert-or-update with the holder and expiry checks in its `WHERE`)
//! and its audit row are data-modifying CTEs of the same statement. A fence
//! is the larger of the sequence `session_lease_fence` and the database
//! clock in microseconds (`TAKE_SQL`): fences grow strictly with every change
//! of hands, across purges, re-creates, rotations and restarts, and, as long
//! as the database clock does not go back, across a restore from backup
//! (which winds the sequence back).
//!
//! Renewals are not audited (a loader renews every few seconds); they are
//! counted in `vibee_lease_renewals_total`. Takes, releases and renewals of
//! many leases at once are one statement per batch (`batch.rs`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::activity::{ActivityType, AuditContext};
use super::error::DbError;
use crate::domain::validate::{self, Invalid};

#[macro_use]
mod sql;
mod batch;
mod holders;
mod view;
pub use batch::{MAX_BATCH, release_batch, renew_batch, take_batch};
pub use holders::{heartbeat, leave};
pub use view::{LeaseCounts, Slot, counts, live_for, live_locked, slots};

pub const MIN_TTL_SECONDS: i32 = 5;
pub const MAX_TTL_SECONDS: i32 = 3600;
pub const DEFAULT_TTL_SECONDS: i32 = 60;

/// A lease as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct Lease {
    #[diesel(sql_type = Text)]
    pub session_id: String,
    #[diesel(sql_type = Text)]
    pub holder: String,
    /// Grows strictly every time the lease changes hands; never reused.
    #[diesel(sql_type = BigInt)]
    pub fence: i64,
    /// By the database's clock.
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
}

/// How a granted take changed the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It was free (never taken, or released).
    Taken,
    /// The same holder asked again while it was live: same fence, later expiry.
    Renewed,
    /// It had expired; `prior_holder` held it (possibly the same holder).
    TakenOver { prior_holder: String },
}

#[derive(Debug)]
pub enum Take {
    Granted {
        lease: Lease,
        change: Change,
    },
    /// Another holder has a live lease.
    Held(Lease),
    /// The session is deactivated: nobody may run it.
    Inactive,
}

#[derive(Debug)]
pub enum Release {
    Released,
    /// The holder or fence does not match (the live lease, if any, is given).
    Stale(Option<Lease>),
}

pub fn validate_holder(holder: &str) -> Result<(), Invalid> {
    validate::identifier("holder", holder)
}

pub fn validate_ttl(ttl_seconds: i32) -> Result<(), Invalid> {
    if (MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
        Ok(())
    } else {
        Err(Invalid::new(
            "ttl_seconds",
            format!("must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}"),
        ))
    }
}

#[derive(QueryableByName)]
struct TakeRow {
    #[diesel(sql_type = Bool)]
    is_active: bool,
    #[diesel(sql_type = Nullable<Text>)]
    holder: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    fence: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    prior_holder: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    changed: Option<bool>,
}

const TAKE_SQL: &str = concat!(
    "WITH s AS (
    SELECT session_id, user_id, is_active FROM user_sessions WHERE session_id = $1
), up AS (
    ",
    take_upsert!("FROM s WHERE is_active"),
    "
), audit AS (
    ",
    take_audit!(),
    "
)
SELECT s.is_active, up.holder, up.fence, up.expires_at, up.prior_holder, up.changed
FROM s LEFT JOIN up ON true"
);

/// Takes or renews the lease of `session_id` for `holder`. `NotFound` when
/// there is no such session.
pub async fn take(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
    holder: &str,
    ttl_seconds: i32,
) -> Result<Take, DbError> {
    validate::identifier("session_id", session_id)?;
    validate_holder(holder)?;
    validate_ttl(ttl_seconds)?;
    // Held, then gone before we could read who held it: try once more.
    for _ in 0..2 {
        if let Some(outcome) = take_once(conn, ctx, session_id, holder, ttl_seconds).await? {
            return Ok(outcome);
        }
    }
    Err(DbError::Unavailable(
        "the lease kept changing hands during the request; retry".into(),
    ))
}

async fn take_once(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
    holder: &str,
    ttl_seconds: i32,
) -> Result<Option<Take>, DbError> {
    let row: TakeRow = diesel::sql_query(TAKE_SQL)
        .bind::<Text, _>(session_id)
        .bind::<Text, _>(holder)
        .bind::<Integer, _>(ttl_seconds)
        .bind::<Text, _>(&ctx.actor)
        .bind::<Nullable<Text>, _>(ctx.request_id.as_deref())
        .bind::<Text, _>(ActivityType::LeaseTaken)
        .bind::<Text, _>(ActivityType::LeaseTakenOver)
        .get_result(conn)
        .await
        .map_err(purged_meanwhile)?;
    if !row.is_active {
        return Ok(Some(Take::Inactive));
    }
    let (Some(holder), Some(fence), Some(expires_at)) = (row.holder, row.fence, row.expires_at)
    else {
        // Held by another live holder; read who (a fresh snapshot). None:
        // released or expired in between.
        return Ok(get(conn, session_id).await?.map(Take::Held));
    };
    let change = match (row.changed, row.prior_holder) {
        (Some(false), _) => Change::Renewed,
        (_, Some(prior_holder)) => Change::TakenOver { prior_holder },
        (_, None) => Change::Taken,
    };
    let kind = match change {
        Change::Renewed => "renewed",
        Change::Taken => "taken",
        Change::TakenOver { .. } => "taken_over",
    };
    if change == Change::Renewed {
        metrics::counter!("vibee_lease_renewals_total").increment(1);
    } else {
        metrics::counter!("vibee_lease_changes_total", "kind" => kind).increment(1);
    }
    Ok(Some(Take::Granted {
        lease: Lease {
            session_id: session_id.to_owned(),
            holder,
            fence,
            expires_at,
        },
        change,
    }))
}

/// A take that waited on a purge of its session (the row locked by the
/// DELETE) meets the foreign key once the purge commits: the session is not
/// found, as if the purge had come first.
fn purged_meanwhile(e: diesel::result::Error) -> DbError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => DbError::NotFound,
        e => e.into(),
    }
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Nullable<Text>)]
    holder: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    fence: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
}

/// The live lease of a session (`None` when free or expired); `NotFound`
/// when there is no such session.
pub async fn get(conn: &mut AsyncPgConnection, session_id: &str) -> Result<Option<Lease>, DbError> {
    let found: Found = diesel::sql_query(
        "SELECT l.holder, l.fence, l.expires_at FROM user_sessions s \
         LEFT JOIN session_leases l ON l.session_id = s.session_id AND l.expires_at > now() \
         WHERE s.session_id = $1",
    )
    .bind::<Text, _>(session_id)
    .get_result(conn)
    .await?;
    Ok(match (found.holder, found.fence, found.expires_at) {
        (Some(holder), Some(fence), Some(expires_at)) => Some(Lease {
            session_id: session_id.to_owned(),
            holder,
            fence,
            expires_at,
        }),
        _ => None,
    })
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Releases the lease when `holder` and `fence` are the current ones.
pub async fn release(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
    holder: &str,
    fence: i64,
) -> Result<Release, DbError> {
    validate::identifier("session_id", session_id)?;
    validate_holder(holder)?;
    let deleted: Count = diesel::sql_query(
        "WITH d AS (DELETE FROM session_leases WHERE session_id = $1 AND holder = $2 AND fence = $3 \
                    RETURNING session_id, holder, fence), \
              a AS (INSERT INTO session_activity (session_id, user_id, activity_type, actor, request_id, details) \
                    SELECT d.session_id, s.user_id, $6, $4, $5, \
                           jsonb_build_object('holder', d.holder, 'fence', d.fence) \
                    FROM d JOIN user_sessions s ON s.session_id = d.session_id) \
         SELECT count(*) AS n FROM d",
    )
    .bind::<Text, _>(session_id)
    .bind::<Text, _>(holder)
    .bind::<BigInt, _>(fence)
    .bind::<Text, _>(&ctx.actor)
    .bind::<Nullable<Text>, _>(ctx.request_id.as_deref())
    .bind::<Text, _>(ActivityType::LeaseReleased)
    .get_result(conn)
    .await?;
    if deleted.n > 0 {
        metrics::counter!("vibee_lease_changes_total", "kind" => "released").increment(1);
        return Ok(Release::Released);
    }
    Ok(Release::Stale(get(conn, session_id).await?))
}

/// Breaks whatever lease a session has (an admin's act). Returns the lease
/// that was there, live or expired; `None` when there was none.
pub async fn break_lease(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
) -> Result<Option<Lease>, DbError> {
    validate::identifier("session_id", session_id)?;
    let broken: Option<Lease> = diesel::sql_query(
        "WITH d AS (DELETE FROM session_leases WHERE session_id = $1 \
                    RETURNING session_id, holder, fence, expires_at), \
              a AS (INSERT INTO session_activity (session_id, user_id, activity_type, actor, request_id, details) \
                    SELECT d.session_id, s.user_id, $4, $2, $3, \
                           jsonb_build_object('holder', d.holder, 'fence', d.fence, \
                                              'was_live', d.expires_at > now()) \
                    FROM d JOIN user_sessions s ON s.session_id = d.session_id) \
         SELECT session_id, holder, fence, expires_at FROM d",
    )
    .bind::<Text, _>(session_id)
    .bind::<Text, _>(&ctx.actor)
    .bind::<Nullable<Text>, _>(ctx.request_id.as_deref())
    .bind::<Text, _>(ActivityType::LeaseBroken)
    .get_result(conn)
    .await
    .optional()?;
    if broken.is_some() {
        metrics::counter!("vibee_lease_changes_total", "kind" => "broken").increment(1);
    } else {
        // NotFound for an unknown session; Ok(None) when it had no lease.
        get(conn, session_id).await?;
    }
    Ok(broken)
}

#[derive(QueryableByName)]
struct LiveFence {
    #[diesel(sql_type = BigInt)]
    fence: i64,
}

/// Fencing of a write that replaces what a lease holder uses (the blob, the
/// api_hash): while a lease is live, the write must carry its fence; a fence
/// that is not the live one is stale, also when no lease is live (the
/// writer's lease expired or was released, and another holder may have
/// written since). Called inside the write's transaction: the lease row is
/// share-locked until the commit, so no take or renewal can slip between
/// this check and the write.
pub async fn check_fence(
    conn: &mut AsyncPgConnection,
    session_id: &str,
    fence: Option<i64>,
) -> Result<(), DbError> {
    let live: Option<LiveFence> = diesel::sql_query(
        "SELECT fence FROM session_leases WHERE session_id = $1 AND expires_at > now() FOR SHARE",
    )
    .bind::<Text, _>(session_id)
    .get_result(conn)
    .await
    .optional()?;
    match (live, fence) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(DbError::StaleFence),
        (Some(_), None) => Err(DbError::LeaseRequired),
        (Some(l), Some(f)) if l.fence == f => Ok(()),
        (Some(_), Some(_)) => Err(DbError::StaleFence),
    }
}
