//! The server's store: the pool, the vault and the audit queue behind one
//! API, so the two audit rules hold by construction rather than by habit.
//!
//! - An audited read (`credentials`, `session_data`) reads, hands its audit
//!   event to the group-commit writer and returns the secret only once that
//!   row has committed: there is no way to get the secret without its
//!   durable audit row.
//! - Every write, the audit trail and the stats flush the queue first, so
//!   this process's queued reads are committed before anything it does next
//!   (its own audit rows stay in the order it acted).
//!
//! The readers that do not audit live in `db::sessions` and are visible to
//! `db` only. Changes write their audit row inside their own transaction.
//! Commands with a single connection (the CLI, the boot loader) use the
//! functions of `db::sessions` directly: each of those audits in line.

use std::sync::Arc;

use secrecy::SecretSlice;
use zeroize::Zeroizing;

use crate::domain::{SessionId, UserId};

use super::activity::{self, Activity, AuditContext, AuditQueue, TrailOf};
use super::error::DbError;
use super::keys::Vault;
use super::sessions::{
    self, By, Expected, ListQuery, Page, Session, SessionInput, SessionMeta, SessionPatch, Upserted,
};
use super::stats::{self, Stats};
use super::{Pool, PooledConnection};

mod leases;

/// The pool, the unlocked data keys and the audit queue of a server.
pub struct Store {
    pool: Pool,
    vault: Arc<Vault>,
    audit: AuditQueue,
}

impl Store {
    pub fn new(pool: Pool, vault: Arc<Vault>, audit: AuditQueue) -> Self {
        Self { pool, vault, audit }
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The pool's figures, for metrics.
    pub fn pool_status(&self) -> deadpool::Status {
        self.pool.status()
    }

    /// A connection for what touches neither a secret nor the audit trail:
    /// tokens, key status, readiness.
    pub async fn conn(&self) -> Result<PooledConnection, DbError> {
        Ok(self.pool.get().await?)
    }

    /// The session of a tenant with its decrypted credentials; the read's
    /// audit row has committed before this returns. A deactivated session is
    /// `DbError::Inactive`.
    pub async fn credentials(
        &self,
        ctx: &AuditContext,
        user_id: &UserId,
    ) -> Result<Session, DbError> {
        self.credentials_by(ctx, By::UserId(user_id.as_str())).await
    }

    /// `credentials`, of the session named by its session_id.
    pub async fn session_credentials(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
    ) -> Result<Session, DbError> {
        self.credentials_by(ctx, By::SessionId(session_id.as_str()))
            .await
    }

    async fn credentials_by(&self, ctx: &AuditContext, by: By<'_>) -> Result<Session, DbError> {
        let found = {
            let mut conn = self.conn().await?;
            sessions::read_credentials(&mut conn, &self.vault, by).await?
        };
        // Recorded after the connection is back in the pool, so readers waiting
        // for their batch's commit do not starve the writer of connections.
        self.audit
            .record(ctx, sessions::credentials_read_event(&found.meta))
            .await?;
        Ok(found)
    }

    /// The boot loader's read (`GET ...?boot=true`): an active session's
    /// credentials, its `boot_load` audit row and `last_seen_at` stamp
    /// committed together before this returns (not queued). `Ok(None)` when
    /// the session exists but is deactivated.
    pub async fn boot_load(
        &self,
        ctx: &AuditContext,
        user_id: &UserId,
    ) -> Result<Option<Session>, DbError> {
        let mut conn = self.flushed_conn().await?;
        if !sessions::get_meta(&mut conn, user_id.as_str())
            .await?
            .is_active
        {
            return Ok(None);
        }
        let selection = sessions::BootSelection::User(user_id.as_str());
        match sessions::load_for_boot(&mut conn, &self.vault, ctx, selection).await {
            Ok(mut page) => Ok(Some(page.sessions.remove(0))),
            // Deactivated (or purged) between the two reads.
            Err(DbError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Metadata of a tenant's session (its session_id among it); nothing is
    /// decrypted or audited.
    pub async fn user(&self, user_id: &UserId) -> Result<SessionMeta, DbError> {
        let mut conn = self.conn().await?;
        sessions::meta(&mut conn, By::UserId(user_id.as_str())).await
    }

    /// Whether `value` is some session's user_id (to tell an old client that
    /// sent one where a session_id is expected what changed).
    pub async fn is_user_id(&self, value: &str) -> Result<bool, DbError> {
        let mut conn = self.conn().await?;
        match sessions::meta(&mut conn, By::UserId(value)).await {
            Ok(_) => Ok(true),
            Err(DbError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The MTProto session blob of a session (`None` when none is stored)
    /// and the session's version; the read's audit row has committed before
    /// this returns. A deactivated session is `DbError::Inactive`.
    pub async fn session_data(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
    ) -> Result<Option<(SecretSlice<u8>, i64)>, DbError> {
        let read = {
            let mut conn = self.conn().await?;
            sessions::read_session_data(&mut conn, &self.vault, session_id.as_str()).await?
        };
        let Some(read) = read else {
            return Ok(None);
        };
        self.audit.record(ctx, read.event()).await?;
        Ok(Some((read.data, read.version)))
    }

    /// Creates or updates the session of `input.user_id`.
    pub async fn upsert(
        &self,
        ctx: &AuditContext,
        input: &SessionInput,
    ) -> Result<Upserted, DbError> {
        self.upsert_if(ctx, input, sessions::Condition::Any, None)
            .await
    }

    /// `upsert`, only when `condition` holds (`If-Match`, `If-None-Match: *`)
    /// and, when it replaces the api_hash or the blob of a leased session,
    /// `fence` is the live lease's (`Lease-Fence`).
    pub async fn upsert_if(
        &self,
        ctx: &AuditContext,
        input: &SessionInput,
        condition: sessions::Condition<'_>,
        fence: Option<i64>,
    ) -> Result<Upserted, DbError> {
        let mut conn = self.flushed_conn().await?;
        sessions::upsert_if(&mut conn, &self.vault, ctx, input, condition, fence).await
    }

    /// Changes non-secret fields of an active session.
    pub async fn update_metadata(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
        patch: &SessionPatch,
        expected: Expected<'_>,
    ) -> Result<SessionMeta, DbError> {
        let mut conn = self.flushed_conn().await?;
        let by = By::SessionId(session_id.as_str());
        sessions::update_metadata(&mut conn, ctx, by, patch, expected).await
    }

    /// Makes a deactivated session active again (audited when it changes).
    pub async fn reactivate(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
    ) -> Result<SessionMeta, DbError> {
        let mut conn = self.flushed_conn().await?;
        let (meta, _) = sessions::reactivate(&mut conn, ctx, session_id.as_str()).await?;
        Ok(meta)
    }

    /// Marks a session inactive; `Ok(false)` when it already was.
    pub async fn deactivate(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
        expected: Expected<'_>,
    ) -> Result<bool, DbError> {
        let mut conn = self.flushed_conn().await?;
        sessions::deactivate(&mut conn, ctx, session_id.as_str(), expected).await
    }

    /// Deletes a session row; its audit trail stays. Refused while a lease
    /// is live.
    pub async fn purge(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
        expected: Expected<'_>,
    ) -> Result<(), DbError> {
        let mut conn = self.flushed_conn().await?;
        sessions::purge(&mut conn, ctx, session_id.as_str(), expected).await
    }

    /// Replaces the MTProto session blob of an active session.
    pub async fn put_session_data(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
        data: Zeroizing<Vec<u8>>,
        expected: Expected<'_>,
        fence: Option<i64>,
    ) -> Result<SessionMeta, DbError> {
        let mut conn = self.flushed_conn().await?;
        let id = session_id.as_str();
        sessions::put_session_data(&mut conn, &self.vault, ctx, id, data, expected, fence).await
    }

    /// Clears the MTProto session blob of an active session (audited;
    /// fenced while a lease is live).
    pub async fn delete_session_data(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
        expected: Expected<'_>,
        fence: Option<i64>,
    ) -> Result<SessionMeta, DbError> {
        let mut conn = self.flushed_conn().await?;
        let id = session_id.as_str();
        sessions::delete_session_data(&mut conn, ctx, id, expected, fence).await
    }

    /// A page of sessions, metadata only. Not flushed: a listing of
    /// sessions reads no audit row, so queued events cannot change it.
    pub async fn list(&self, query: &ListQuery) -> Result<Page, DbError> {
        let mut conn = self.conn().await?;
        sessions::list(&mut conn, query).await
    }

    /// A tenant's or a session's audit trail, newest first, with this
    /// process's queued events in it (read-your-writes).
    pub async fn activity(
        &self,
        of: TrailOf<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Activity>, DbError> {
        let mut conn = self.flushed_conn().await?;
        activity::list_trail(&mut conn, of, before, limit).await
    }

    /// The operators' figures, counting this process's queued events.
    pub async fn stats(&self) -> Result<Stats, DbError> {
        let mut conn = self.flushed_conn().await?;
        stats::stats(&mut conn).await
    }

    /// The queue flushed first, then a connection: never the other way
    /// round, or a full pool would keep the writer from committing.
    async fn flushed_conn(&self) -> Result<PooledConnection, DbError> {
        self.audit.flush().await?;
        self.conn().await
    }
}
