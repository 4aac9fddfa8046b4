//! The audit log: who did what to which session. It never holds a secret,
//! hashed or not; `details` carries field names and key ids only.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;

mod queue;
pub use queue::{AuditQueue, MAX_BATCH, QUEUE_CAPACITY};
pub(crate) use queue::{Row, insert_rows};

use super::error::DbError;
use super::schema::session_activity;

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

/// The kinds of audited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityType {
    SessionCreated,
    SessionUpdated,
    CredentialsRead,
    SessionDeactivated,
    SessionPurged,
    SessionDataRead,
    SessionDataWritten,
    SessionDataDeleted,
    SessionReactivated,
    /// The boot loader handed a session's credentials to an agent.
    BootLoad,
    /// A lease was taken while free, or released by its holder, or broken by
    /// an admin, or taken over after it expired. Renewals are not audited.
    LeaseTaken,
    LeaseReleased,
    LeaseBroken,
    LeaseTakenOver,
    /// Key events: no session, so `session_id`/`user_id` are NULL and
    /// `details` holds key ids and counts only.
    KeyRotationStarted,
    KeyRotationFinished,
    KeyRetired,
    KeyDestroyed,
    MasterKeyRotated,
}

impl ActivityType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityType::SessionCreated => "session_created",
            ActivityType::SessionUpdated => "session_updated",
            ActivityType::CredentialsRead => "credentials_read",
            ActivityType::SessionDeactivated => "session_deactivated",
            ActivityType::SessionPurged => "session_purged",
            ActivityType::SessionDataRead => "session_data_read",
            ActivityType::SessionDataWritten => "session_data_written",
            ActivityType::SessionDataDeleted => "session_data_deleted",
            ActivityType::SessionReactivated => "session_reactivated",
            ActivityType::BootLoad => "boot_load",
            ActivityType::LeaseTaken => "lease_taken",
            ActivityType::LeaseReleased => "lease_released",
            ActivityType::LeaseBroken => "lease_broken",
            ActivityType::LeaseTakenOver => "lease_taken_over",
            ActivityType::KeyRotationStarted => "key_rotation_started",
            ActivityType::KeyRotationFinished => "key_rotation_finished",
            ActivityType::KeyRetired => "key_retired",
            ActivityType::KeyDestroyed => "key_destroyed",
            ActivityType::MasterKeyRotated => "master_key_rotated",
        }
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
            session_activity::activity_type.eq(event.kind.as_str()),
            session_activity::actor.eq(&ctx.actor),
            session_activity::request_id.eq(ctx.request_id.as_deref()),
            session_activity::details.eq(&event.details),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records an event about keys rather than a session.
pub async fn record_key_event(
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
    pub activity_type: String,
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
