//! The audit log: who did what to which session. It never holds a secret,
//! hashed or not; `details` carries field names and key ids only.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;

mod queue;
pub use queue::{AuditQueue, MAX_BATCH, MAX_IN_FLIGHT, QUEUE_CAPACITY};
pub(crate) use queue::{Row, insert_rows};

use super::error::DbError;
use super::schema::session_activity;
use super::text_enum::text_enum;

/// Who is acting, for the audit log: a token name or `cli`, and the request id.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: String,
    pub request_id: Option<String>,
}

impl AuditContext {
    pub fn cli() -> Self {
        Self {
            actor: "cli".to_owned(),
            request_id: None,
        }
    }
}

text_enum! {
    /// The kinds of audited event, as `session_activity.activity_type` holds them.
    pub enum ActivityType in "session_activity.activity_type" as "activity type" {
        SessionCreated = "session_created",
        SessionUpdated = "session_updated",
        CredentialsRead = "credentials_read",
        SessionDeactivated = "session_deactivated",
        SessionPurged = "session_purged",
        SessionDataRead = "session_data_read",
        SessionDataWritten = "session_data_written",
        SessionDataDeleted = "session_data_deleted",
        SessionReactivated = "session_reactivated",
        /// The boot loader handed a session's credentials to an agent.
        BootLoad = "boot_load",
        /// A lease was taken while free, or released by its holder, or broken by
        /// an admin, or taken over after it expired. Renewals are not audited.
        /// (`db::leases` writes these four in its SQL, by the same words.)
        LeaseTaken = "lease_taken",
        LeaseReleased = "lease_released",
        LeaseBroken = "lease_broken",
        LeaseTakenOver = "lease_taken_over",
        /// Key events: no session, so `session_id`/`user_id` are NULL and
        /// `details` holds key ids and counts only.
        KeyRotationStarted = "key_rotation_started",
        KeyRotationFinished = "key_rotation_finished",
        KeyRetired = "key_retired",
        KeyDestroyed = "key_destroyed",
        MasterKeyRotated = "master_key_rotated",
        /// Token events: no session; `details` names the token (never its secret).
        TokenCreated = "token_created",
        TokenRevoked = "token_revoked",
    }
}

/// What happened to which session.
pub struct Event<'a> {
    pub kind: ActivityType,
    pub session_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub details: Value,
}

pub async fn record(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    event: Event<'_>,
) -> Result<(), DbError> {
    let mut shared: &AsyncPgConnection = conn;
    record_pipelined(&mut shared, ctx, event).await
}

/// `record` through a shared reference: polled together with other queries
/// on the same connection (`futures_util::future::try_join`), it is sent in
/// the same round trip (diesel-async pipelines them) and runs after them.
pub async fn record_pipelined(
    conn: &mut &AsyncPgConnection,
    ctx: &AuditContext,
    event: Event<'_>,
) -> Result<(), DbError> {
    diesel::insert_into(session_activity::table)
        .values((
            session_activity::session_id.eq(event.session_id),
            session_activity::user_id.eq(event.user_id),
            session_activity::activity_type.eq(event.kind),
            session_activity::actor.eq(&ctx.actor),
            session_activity::request_id.eq(ctx.request_id.as_deref()),
            session_activity::details.eq(&event.details),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records an event about no session: about keys, or about API tokens.
pub async fn record_unscoped_event(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    kind: ActivityType,
    details: Value,
) -> Result<(), DbError> {
    record(
        conn,
        ctx,
        Event {
            kind,
            session_id: None,
            user_id: None,
            details,
        },
    )
    .await
}

#[derive(Debug, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = session_activity)]
pub struct Activity {
    pub id: i64,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    #[schema(value_type = String)]
    pub activity_type: ActivityType,
    pub actor: String,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// Whose audit trail: a tenant's (`user_id`) or a session's (`session_id`).
/// The trail outlives the row, so neither has to exist any more.
#[derive(Debug, Clone, Copy)]
pub enum TrailOf<'a> {
    User(&'a str),
    Session(&'a str),
}

/// An audit trail, newest first; `before` is the id to continue below.
pub async fn list_trail(
    conn: &mut AsyncPgConnection,
    of: TrailOf<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Activity>, DbError> {
    let mut query = session_activity::table
        .select(Activity::as_select())
        .order(session_activity::id.desc())
        .limit(limit)
        .into_boxed();
    query = match of {
        TrailOf::User(user_id) => query.filter(session_activity::user_id.eq(user_id)),
        TrailOf::Session(session_id) => query.filter(session_activity::session_id.eq(session_id)),
    };
    if let Some(before) = before {
        query = query.filter(session_activity::id.lt(before));
    }
    Ok(query.load(conn).await?)
}
