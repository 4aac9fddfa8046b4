//! The boot loader's read: active sessions with their credentials, a page at
//! a time, each load audited (`boot_load`) and stamped in `last_seen_at` in
//! one transaction per page, so ten thousand tenants cost a few round trips,
//! not tens of thousands.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{DbError, SealedRow, Session, SessionMeta, Vault, credentials, open_row, ring_for};
use crate::db::activity::{ActivityType, AuditContext, Row, insert_rows};
use crate::db::schema::user_sessions;

/// Which active sessions to load.
pub enum BootSelection<'a> {
    /// One user's session (`NotFound` when it is absent or inactive).
    User(&'a str),
    /// The next page of every active session, in `user_id` order after `after`.
    Page { after: Option<&'a str>, limit: i64 },
    /// The active ones of these sessions (by `session_id`): a boot loader's
    /// leased set, at most `MAX_PAGE` at a time.
    Sessions(&'a [String]),
}

/// The loaded sessions and, for a page, where the next one starts.
pub struct BootPage {
    pub sessions: Vec<Session>,
    pub next_cursor: Option<String>,
}

/// Loads the selection and records the loads (audit rows and the
/// `last_seen_at` stamp, one transaction) before returning them.
pub async fn load_for_boot(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    selection: BootSelection<'_>,
) -> Result<BootPage, DbError> {
    let page = fetch_for_boot(conn, vault, selection).await?;
    record_loads(conn, ctx, &page.sessions).await?;
    Ok(page)
}

/// Reads and decrypts the selection, NOT yet recorded: the caller runs
/// `record_loads` on the page, and hands nothing out before it returns
/// (`boot --all` reads the next page on one connection while the previous
/// page's record commits on another).
pub async fn fetch_for_boot(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    selection: BootSelection<'_>,
) -> Result<BootPage, DbError> {
    let mut query = user_sessions::table
        .filter(user_sessions::is_active.eq(true))
        .select((SessionMeta::as_select(), SealedRow::as_select()))
        .order(user_sessions::user_id)
        .into_boxed();
    let mut limit = 1;
    match selection {
        BootSelection::User(user_id) => query = query.filter(user_sessions::user_id.eq(user_id)),
        BootSelection::Sessions(ids) => {
            limit = (ids.len() as i64).clamp(1, super::MAX_PAGE);
            query = query.filter(user_sessions::session_id.eq_any(ids));
        }
        BootSelection::Page { after, limit: l } => {
            limit = l.clamp(1, super::MAX_PAGE);
            if let Some(after) = after {
                query = query.filter(user_sessions::user_id.gt(after));
            }
        }
    }
    let mut rows: Vec<(SessionMeta, SealedRow)> = query.limit(limit + 1).load(conn).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|(m, _)| m.user_id.clone())
    } else {
        None
    };
    if rows.is_empty() {
        return match selection {
            BootSelection::User(_) => Err(DbError::NotFound),
            BootSelection::Page { .. } | BootSelection::Sessions(_) => Ok(BootPage {
                sessions: Vec::new(),
                next_cursor,
            }),
        };
    }
    // Decrypt first: a row that fails its integrity check stops the load
    // before anything is recorded as handed out.
    let mut sessions = Vec::with_capacity(rows.len());
    for (meta, row) in rows {
        let ring = ring_for(conn, vault, &row).await?;
        let credentials = credentials(open_row(&ring, &row)?)?;
        sessions.push(Session { meta, credentials });
    }
    Ok(BootPage {
        sessions,
        next_cursor,
    })
}

/// The loads of `sessions` recorded: their `boot_load` audit rows and
/// `last_seen_at` stamps, committed together.
pub async fn record_loads(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    sessions: &[Session],
) -> Result<(), DbError> {
    if sessions.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = sessions.iter().map(|s| s.meta.id).collect();
    let details: Value = json!({ "fields": ["api_hash", "phone", "session_data"] });
    let audit: Vec<Row> = sessions
        .iter()
        .map(|s| Row {
            session_id: Some(s.meta.session_id.clone()),
            user_id: Some(s.meta.user_id.clone()),
            activity_type: ActivityType::BootLoad,
            actor: ctx.actor.clone(),
            request_id: ctx.request_id.clone(),
            details: details.clone(),
            // The transaction's time, as when each row was inserted alone.
            created_at: None,
        })
        .collect();
    conn.transaction::<_, DbError, _>(async |conn| {
        diesel::update(user_sessions::table.filter(user_sessions::id.eq_any(&ids)))
            .set((
                user_sessions::last_seen_at.eq(diesel::dsl::sql::<Nullable<Timestamptz>>("now()")),
                user_sessions::version.eq(user_sessions::version + 1),
                user_sessions::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        insert_rows(conn, &audit).await
    })
    .await
}
