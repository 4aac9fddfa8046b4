//! The reads of a session: metadata, listings, and the audited reads of
//! its secrets.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::json;

use super::model::{By, ListQuery, MAX_PAGE, Page, SealedRow, Session, SessionMeta};
use super::seal::{SESSION_DATA, credentials, open_field, open_row, ring_for};
use crate::db::activity::{self, ActivityType, AuditContext, Event};
use crate::db::error::DbError;
use crate::db::keys::Vault;
use crate::db::schema::user_sessions;

/// One session with its decrypted credentials: an audited read, the audit
/// row written before this returns.
pub async fn get_credentials(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    user_id: &str,
) -> Result<Session, DbError> {
    let session = read_credentials(conn, vault, By::UserId(user_id)).await?;
    activity::record(conn, ctx, credentials_read_event(&session.meta)).await?;
    Ok(session)
}

/// One session with its decrypted credentials, NOT audited: the caller must
/// record `credentials_read_event` before handing them out. Only `db` sees
/// it: `Store::credentials` queues the event, `get_credentials` writes it.
/// A deactivated session is `DbError::Inactive`, and nothing of it is
/// decrypted.
pub(in crate::db) async fn read_credentials(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    by: By<'_>,
) -> Result<Session, DbError> {
    let (meta, row) = by
        .query()
        .select((SessionMeta::as_select(), SealedRow::as_select()))
        .first::<(SessionMeta, SealedRow)>(conn)
        .await?;
    if !meta.is_active {
        return Err(DbError::Inactive);
    }
    let ring = ring_for(conn, vault, &row).await?;
    let credentials = credentials(open_row(&ring, &row)?)?;
    Ok(Session { meta, credentials })
}

/// The audit event of a credentials read.
pub(in crate::db) fn credentials_read_event(meta: &SessionMeta) -> Event<'_> {
    Event {
        kind: ActivityType::CredentialsRead,
        session_id: Some(&meta.session_id),
        user_id: Some(&meta.user_id),
        details: json!({ "fields": ["api_hash", "phone", "session_data"] }),
    }
}

/// Metadata of one session; no secret, not audited.
pub async fn get_meta(conn: &mut AsyncPgConnection, user_id: &str) -> Result<SessionMeta, DbError> {
    meta(conn, By::UserId(user_id)).await
}

/// Metadata of one session, by either key; no secret, not audited.
pub async fn meta(conn: &mut AsyncPgConnection, by: By<'_>) -> Result<SessionMeta, DbError> {
    Ok(by
        .query()
        .select(SessionMeta::as_select())
        .first(conn)
        .await?)
}

/// Sessions in `user_id` order, a page at a time (keyset pagination: stable
/// under concurrent inserts, and as fast on the last page as on the first).
pub async fn list(conn: &mut AsyncPgConnection, q: &ListQuery) -> Result<Page, DbError> {
    let limit = q.limit.clamp(1, MAX_PAGE);
    let mut query = user_sessions::table
        .select(SessionMeta::as_select())
        .order(user_sessions::user_id)
        .limit(limit + 1)
        .into_boxed();
    match q.is_active {
        Some(active) => query = query.filter(user_sessions::is_active.eq(active)),
        None if !q.include_inactive => query = query.filter(user_sessions::is_active.eq(true)),
        None => {}
    }
    if let Some(search) = &q.search {
        let pattern = format!("%{}%", escape_like(search));
        query = query.filter(
            user_sessions::user_id
                .ilike(pattern.clone())
                .or(user_sessions::session_id.ilike(pattern.clone()))
                .or(user_sessions::username.ilike(pattern).assume_not_null()),
        );
    }
    if let Some(held) = q.held {
        let live = diesel::dsl::sql::<diesel::sql_types::Bool>(
            "EXISTS (SELECT 1 FROM session_leases l \
             WHERE l.session_id = user_sessions.session_id AND l.expires_at > now())",
        );
        query = if held {
            query.filter(live)
        } else {
            query.filter(diesel::dsl::not(live))
        };
    }
    if let Some(authorized) = q.is_authorized {
        query = query.filter(user_sessions::is_authorized.eq(authorized));
    }
    if let Some(after) = &q.after {
        query = query.filter(user_sessions::user_id.gt(after));
    }
    if let Some(user_id) = &q.user_id {
        query = query.filter(user_sessions::user_id.eq(user_id));
    }
    let mut sessions: Vec<SessionMeta> = query.load(conn).await?;
    let next_cursor = if sessions.len() as i64 > limit {
        sessions.truncate(limit as usize);
        sessions.last().map(|s| s.user_id.clone())
    } else {
        None
    };
    Ok(Page {
        sessions,
        next_cursor,
    })
}

/// `s` as a literal inside a LIKE pattern (the default escape is a backslash).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The MTProto session blob of a session (`None` when none is stored): an
/// audited read, the audit row written before this returns.
pub async fn get_session_data(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    session_id: &str,
) -> Result<Option<SecretSlice<u8>>, DbError> {
    let Some(read) = read_session_data(conn, vault, session_id).await? else {
        return Ok(None);
    };
    activity::record(conn, ctx, read.event()).await?;
    Ok(Some(read.data))
}

/// A session blob read, not yet audited.
pub(in crate::db) struct SessionDataRead {
    pub session_id: String,
    pub user_id: String,
    /// The session's version when the blob was read (its `ETag`).
    pub version: i64,
    pub data: SecretSlice<u8>,
}

impl SessionDataRead {
    /// The audit event to record before handing the blob out.
    pub fn event(&self) -> Event<'_> {
        Event {
            kind: ActivityType::SessionDataRead,
            session_id: Some(&self.session_id),
            user_id: Some(&self.user_id),
            details: json!({ "bytes": self.data.expose_secret().len() }),
        }
    }
}

/// The MTProto session blob of a session (`None` when none is stored), NOT
/// audited: the caller records `SessionDataRead::event` before handing it out.
/// Only `db` sees it (`Store::session_data`, `get_session_data`). A
/// deactivated session is `DbError::Inactive`.
pub(in crate::db) async fn read_session_data(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    session_id: &str,
) -> Result<Option<SessionDataRead>, DbError> {
    let (user_id, row) = user_sessions::table
        .filter(user_sessions::session_id.eq(session_id))
        .select((user_sessions::user_id, SealedRow::as_select()))
        .first::<(String, SealedRow)>(conn)
        .await?;
    if !row.is_active {
        return Err(DbError::Inactive);
    }
    let Some(stored) = row.session_data_encrypted.as_deref() else {
        return Ok(None);
    };
    let ring = ring_for(conn, vault, &row).await?;
    let data = open_field(&ring, &row, SESSION_DATA, stored)?;
    Ok(Some(SessionDataRead {
        session_id: session_id.to_owned(),
        user_id,
        version: row.version,
        data: SecretSlice::from(data.to_vec()),
    }))
}
