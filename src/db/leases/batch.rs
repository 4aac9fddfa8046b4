//! Leases by the thousand, each batch one statement (issue 17): a `boot
//! --all` loader takes its share of 100,000 sessions, renews it and gives it
//! back in a few hundred statements, not one (and one commit) per session.
//!
//! Lock order: every batch locks its lease rows in `session_id` order (the
//! take's `INSERT` is fed sorted, the release and the renewal lock their
//! rows with a sorted `FOR UPDATE` first), so batches of different loaders
//! over the same sessions wait for each other instead of deadlocking. A
//! deadlock or serialization failure (a purge, an odd plan) is retried a
//! few times all the same; a statement that fails changes nothing.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{DbError, Lease, validate_holder, validate_ttl};
use crate::db::activity::{ActivityType, AuditContext};
use crate::domain::validate::{self, Invalid};

/// Leases one batched take, release or renewal may name.
pub const MAX_BATCH: usize = 10_000;

/// Runs of one batch statement before a conflict with concurrent ones is
/// reported (503, retry).
const ATTEMPTS: u32 = 4;

/// `MAX_BATCH` at most, for the body field `field`.
fn check_size(field: &'static str, len: usize) -> Result<(), Invalid> {
    if len > MAX_BATCH {
        return Err(Invalid::new(
            field,
            format!("may name at most {MAX_BATCH} leases"),
        ));
    }
    Ok(())
}

/// The `(session_id, fence)` pairs of a release or renewal, checked (size,
/// ids) and split into the two arrays the statements `unnest`.
fn fence_columns(fences: &[(String, i64)]) -> Result<(Vec<&str>, Vec<i64>), Invalid> {
    check_size("fences", fences.len())?;
    for (session_id, _) in fences {
        validate::identifier("session_id", session_id)?;
    }
    Ok(fences.iter().map(|(s, f)| (s.as_str(), *f)).unzip())
}

/// A batch statement that lost to a concurrent one (deadlock, serialization
/// failure) or met a session purged under it (the foreign key of a new
/// lease): run it again, up to `ATTEMPTS` times in all. Anything else is
/// the caller's error.
fn retry_or_fail(e: DieselError, attempt: u32) -> Result<(), DbError> {
    let conflict = match &e {
        DieselError::DatabaseError(
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ForeignKeyViolation,
            _,
        ) => true,
        // SQLSTATE 40P01; diesel does not expose it (see db::error).
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            info.message().starts_with("deadlock detected")
        }
        _ => false,
    };
    match (conflict, attempt < ATTEMPTS) {
        (true, true) => {
            tracing::debug!(attempt, error = %e, "a lease batch met a concurrent one; running it again");
            Ok(())
        }
        (true, false) => Err(DbError::Unavailable(
            "the leases kept changing under the batch; retry".into(),
        )),
        (false, _) => Err(e.into()),
    }
}

/// The named active sessions, sorted: the `INSERT` takes their rows in
/// that order.
const TAKE_BATCH_SQL: &str = concat!(
    "WITH s AS (
    SELECT session_id, user_id FROM user_sessions
    WHERE session_id = ANY($1::text[]) AND is_active
), up AS (
    ",
    take_upsert!("FROM s ORDER BY session_id"),
    "
), audit AS (
    ",
    take_audit!(),
    "
)
SELECT session_id, holder, fence, expires_at, prior_holder, changed FROM up"
);

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Text)]
    session_id: String,
    #[diesel(sql_type = Text)]
    holder: String,
    #[diesel(sql_type = BigInt)]
    fence: i64,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    prior_holder: Option<String>,
    #[diesel(sql_type = Bool)]
    changed: bool,
}

/// Takes, in one statement, every named session that is active and whose
/// lease is free, expired, or already `holder`'s (renewed: same fence, not
/// audited), as `take` does one. Returns the granted leases in `session_id`
/// order; the others (held by another holder, deactivated, unknown) are
/// simply missing. A name given twice counts once.
pub async fn take_batch(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    holder: &str,
    ttl_seconds: i32,
    session_ids: &[String],
) -> Result<Vec<Lease>, DbError> {
    validate_holder(holder)?;
    validate_ttl(ttl_seconds)?;
    check_size("session_ids", session_ids.len())?;
    for id in session_ids {
        validate::identifier("session_ids", id)?;
    }
    // ON CONFLICT cannot touch one row twice in a statement.
    let mut ids: Vec<&str> = session_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempt = 0;
    let rows: Vec<Taken> = loop {
        attempt += 1;
        let run = diesel::sql_query(TAKE_BATCH_SQL)
            .bind::<Array<Text>, _>(&ids)
            .bind::<Text, _>(holder)
            .bind::<Integer, _>(ttl_seconds)
            .bind::<Text, _>(&ctx.actor)
            .bind::<Nullable<Text>, _>(ctx.request_id.as_deref())
            .bind::<Text, _>(ActivityType::LeaseTaken)
            .bind::<Text, _>(ActivityType::LeaseTakenOver)
            .load(conn)
            .await;
        match run {
            Ok(rows) => break rows,
            Err(e) => retry_or_fail(e, attempt)?,
        }
    };
    let (mut renewed, mut taken, mut taken_over) = (0u64, 0u64, 0u64);
    let mut granted: Vec<Lease> = rows
        .into_iter()
        .map(|r| {
            match (r.changed, &r.prior_holder) {
                (false, _) => renewed += 1,
                (true, None) => taken += 1,
                (true, Some(_)) => taken_over += 1,
            }
            Lease {
                session_id: r.session_id,
                holder: r.holder,
                fence: r.fence,
                expires_at: r.expires_at,
            }
        })
        .collect();
    granted.sort_unstable_by(|a, b| a.session_id.cmp(&b.session_id));
    metrics::counter!("vibee_lease_renewals_total").increment(renewed);
    metrics::counter!("vibee_lease_changes_total", "kind" => "taken").increment(taken);
    metrics::counter!("vibee_lease_changes_total", "kind" => "taken_over").increment(taken_over);
    Ok(granted)
}

#[derive(QueryableByName)]
struct Released {
    #[diesel(sql_type = Text)]
    session_id: String,
}

/// Releases, in one statement, every named lease `holder` still holds at
/// that fence (live or expired, as `release` does one), each with its
/// `lease_released` audit row. Returns the released session ids, sorted;
/// the others are stale (released, broken, taken over, or never held).
pub async fn release_batch(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    holder: &str,
    fences: &[(String, i64)],
) -> Result<Vec<String>, DbError> {
    validate_holder(holder)?;
    let (ids, fs) = fence_columns(fences)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempt = 0;
    let released: Vec<Released> = loop {
        attempt += 1;
        let run = diesel::sql_query(
            "WITH mine AS ( \
                 SELECT l.session_id, l.fence FROM session_leases l \
                 JOIN unnest($2::text[], $3::bigint[]) AS v(session_id, fence) \
                   ON v.session_id = l.session_id AND v.fence = l.fence \
                 WHERE l.holder = $1 ORDER BY l.session_id FOR UPDATE OF l), \
             d AS (DELETE FROM session_leases l USING mine \
                   WHERE l.session_id = mine.session_id AND l.fence = mine.fence AND l.holder = $1 \
                   RETURNING l.session_id, l.holder, l.fence), \
             a AS (INSERT INTO session_activity (session_id, user_id, activity_type, actor, request_id, details) \
                   SELECT d.session_id, s.user_id, $6, $4, $5, \
                          jsonb_build_object('holder', d.holder, 'fence', d.fence) \
                   FROM d JOIN user_sessions s ON s.session_id = d.session_id) \
             SELECT session_id FROM d ORDER BY session_id",
        )
        .bind::<Text, _>(holder)
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<BigInt>, _>(&fs)
        .bind::<Text, _>(&ctx.actor)
        .bind::<Nullable<Text>, _>(ctx.request_id.as_deref())
        .bind::<Text, _>(ActivityType::LeaseReleased)
        .load(conn)
        .await;
        match run {
            Ok(rows) => break rows,
            Err(e) => retry_or_fail(e, attempt)?,
        }
    };
    metrics::counter!("vibee_lease_changes_total", "kind" => "released")
        .increment(released.len() as u64);
    Ok(released.into_iter().map(|r| r.session_id).collect())
}

/// Renews every named lease `holder` still holds live with that fence, in
/// one statement. Returns the renewed ones; the others are lost (expired,
/// broken, released, or the fence moved on).
pub async fn renew_batch(
    conn: &mut AsyncPgConnection,
    holder: &str,
    ttl_seconds: i32,
    fences: &[(String, i64)],
) -> Result<Vec<Lease>, DbError> {
    validate_holder(holder)?;
    validate_ttl(ttl_seconds)?;
    let (ids, fs) = fence_columns(fences)?;
    let mut attempt = 0;
    let renewed: Vec<Lease> = loop {
        attempt += 1;
        let run = diesel::sql_query(
            "WITH mine AS ( \
                 SELECT l.session_id, l.fence FROM session_leases l \
                 JOIN unnest($3::text[], $4::bigint[]) AS v(session_id, fence) \
                   ON v.session_id = l.session_id AND v.fence = l.fence \
                 WHERE l.holder = $1 AND l.expires_at > now() \
                 ORDER BY l.session_id FOR UPDATE OF l) \
             UPDATE session_leases AS l SET expires_at = now() + $2 * interval '1 second' \
             FROM mine \
             WHERE l.session_id = mine.session_id AND l.fence = mine.fence \
               AND l.holder = $1 AND l.expires_at > now() \
             RETURNING l.session_id, l.holder, l.fence, l.expires_at",
        )
        .bind::<Text, _>(holder)
        .bind::<Integer, _>(ttl_seconds)
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<BigInt>, _>(&fs)
        .load(conn)
        .await;
        match run {
            Ok(rows) => break rows,
            Err(e) => retry_or_fail(e, attempt)?,
        }
    };
    metrics::counter!("vibee_lease_renewals_total").increment(renewed.len() as u64);
    Ok(renewed)
}
