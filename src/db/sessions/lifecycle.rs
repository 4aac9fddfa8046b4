//! What a session's state allows: the lock-and-check every write starts
//! with (active, at the expected version), deactivation and the way back,
//! purging, and clearing the blob.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::model::{By, Expected, SealedRow, SessionMeta, check_writable};
use super::read::meta;
use crate::db::activity::{self, ActivityType, AuditContext, Event};
use crate::db::error::DbError;
use crate::db::schema::user_sessions;

/// The row a write is about, locked, after the checks every write makes: it
/// exists, it is active, and it is at the version the write expects.
pub(super) async fn lock_writable(
    conn: &mut AsyncPgConnection,
    by: By<'_>,
    expected: Expected<'_>,
) -> Result<SealedRow, DbError> {
    // Not boxed: diesel cannot lock a boxed query.
    let locked = user_sessions::table
        .select(SealedRow::as_select())
        .for_update();
    let row: SealedRow = match by {
        By::UserId(id) => {
            locked
                .filter(user_sessions::user_id.eq(id))
                .first(conn)
                .await?
        }
        By::SessionId(id) => {
            locked
                .filter(user_sessions::session_id.eq(id))
                .first(conn)
                .await?
        }
    };
    check_writable(row.is_active, row.version, expected)?;
    Ok(row)
}

/// Clears the MTProto session blob of an active session (a bridge logged
/// out: its auth key is dead). Nothing is decrypted. Idempotent; audited
/// every time, with whether a blob was there. Fenced as a write of the blob
/// is: while a lease is live, only its holder clears it.
pub async fn delete_session_data(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
    expected: Expected<'_>,
    fence: Option<i64>,
) -> Result<SessionMeta, DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let row = lock_writable(conn, By::SessionId(session_id), expected).await?;
        crate::db::leases::check_fence(conn, session_id, fence).await?;
        let meta = diesel::update(user_sessions::table.find(row.id))
            .set((
                user_sessions::session_data_encrypted.eq(None::<Vec<u8>>),
                user_sessions::version.eq(user_sessions::version + 1),
                user_sessions::updated_at.eq(diesel::dsl::now),
            ))
            .returning(SessionMeta::as_returning())
            .get_result(conn)
            .await?;
        let event = Event {
            kind: ActivityType::SessionDataDeleted,
            session_id: Some(session_id),
            user_id: Some(&meta.user_id),
            details: json!({ "had_data": row.session_data_encrypted.is_some() }),
        };
        activity::record(conn, ctx, event).await?;
        Ok(meta)
    })
    .await
}

/// Makes a deactivated session active again: the one way back from
/// `deactivate`, audited. Idempotent: the flag says whether it changed.
pub async fn reactivate(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
) -> Result<(SessionMeta, bool), DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let changed = diesel::update(
            user_sessions::table
                .filter(user_sessions::session_id.eq(session_id))
                .filter(user_sessions::is_active.eq(false)),
        )
        .set((
            user_sessions::is_active.eq(true),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SessionMeta::as_returning())
        .get_result::<SessionMeta>(conn)
        .await
        .optional()?;
        let Some(meta_now) = changed else {
            return Ok((meta(conn, By::SessionId(session_id)).await?, false));
        };
        let event = Event {
            kind: ActivityType::SessionReactivated,
            session_id: Some(session_id),
            user_id: Some(&meta_now.user_id),
            details: json!({}),
        };
        activity::record(conn, ctx, event).await?;
        Ok((meta_now, true))
    })
    .await
}

/// `If-Match` on a deactivation or a purge: the row locked, and at a
/// version the write expects (active or not). Unconditional (`None`), it
/// costs nothing.
async fn check_version(
    conn: &mut AsyncPgConnection,
    session_id: &str,
    expected: Expected<'_>,
) -> Result<(), DbError> {
    let Some(list) = expected else {
        return Ok(());
    };
    let current: i64 = user_sessions::table
        .filter(user_sessions::session_id.eq(session_id))
        .select(user_sessions::version)
        .for_update()
        .first(conn)
        .await?;
    match list.contains(&current) {
        true => Ok(()),
        false => Err(DbError::VersionMismatch { current }),
    }
}

/// Marks a session inactive (a live lease stays: deactivation is how its
/// holder is told to let go). Idempotent: `Ok(false)` when it already was.
pub async fn deactivate(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
    expected: Expected<'_>,
) -> Result<bool, DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        check_version(conn, session_id, expected).await?;
        let changed = diesel::update(
            user_sessions::table
                .filter(user_sessions::session_id.eq(session_id))
                .filter(user_sessions::is_active.eq(true)),
        )
        .set((
            user_sessions::is_active.eq(false),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(user_sessions::user_id)
        .get_result::<String>(conn)
        .await
        .optional()?;
        let Some(user_id) = changed else {
            // Already inactive, or no such session: only the latter is an error.
            user_sessions::table
                .filter(user_sessions::session_id.eq(session_id))
                .select(user_sessions::id)
                .first::<Uuid>(conn)
                .await?;
            return Ok(false);
        };
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionDeactivated,
                session_id: Some(session_id),
                user_id: Some(&user_id),
                details: json!({}),
            },
        )
        .await?;
        Ok(true)
    })
    .await
}

/// Deletes a session row for good. The audit trail stays. Refused while a
/// lease is live (`LeaseHeld`): its holder may still be running the session,
/// and a re-created one could be taken and run beside it.
pub async fn purge(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
    expected: Expected<'_>,
) -> Result<(), DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        check_version(conn, session_id, expected).await?;
        // Locked, so no take lands between this check and the delete (a
        // take of a free session waits on the row the delete locks).
        if let Some(lease) = crate::db::leases::live_locked(conn, session_id).await? {
            return Err(DbError::LeaseHeld(Box::new(lease)));
        }
        let user_id =
            diesel::delete(user_sessions::table.filter(user_sessions::session_id.eq(session_id)))
                .returning(user_sessions::user_id)
                .get_result::<String>(conn)
                .await?;
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionPurged,
                session_id: Some(session_id),
                user_id: Some(&user_id),
                details: json!({}),
            },
        )
        .await
    })
    .await
}
