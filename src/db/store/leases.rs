//! The leases through the store: every change (take, release, break,
//! renewal, a loader's heartbeat) flushes the audit queue first, so this
//! process's queued reads are committed before the lease's own audit row,
//! in the order it acted. Reads of the leases are not flushed: they read
//! no audit row.

use std::collections::HashMap;

use crate::domain::SessionId;

use super::Store;
use crate::db::activity::AuditContext;
use crate::db::error::DbError;
use crate::db::leases::{self, Lease, Release, Take};

impl Store {
    /// Takes or renews the lease of a session for `holder`.
    pub async fn take_lease(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
        holder: &str,
        ttl_seconds: i32,
    ) -> Result<Take, DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::take(&mut conn, ctx, session_id.as_str(), holder, ttl_seconds).await
    }

    /// The live lease of a session, if any.
    pub async fn lease(&self, session_id: &SessionId) -> Result<Option<Lease>, DbError> {
        let mut conn = self.conn().await?;
        leases::get(&mut conn, session_id.as_str()).await
    }

    /// Releases the lease when `holder` and `fence` are the current ones.
    pub async fn release_lease(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
        holder: &str,
        fence: i64,
    ) -> Result<Release, DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::release(&mut conn, ctx, session_id.as_str(), holder, fence).await
    }

    /// Breaks whatever lease a session has (an admin's act).
    pub async fn break_lease(
        &self,
        ctx: &AuditContext,
        session_id: &SessionId,
    ) -> Result<Option<Lease>, DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::break_lease(&mut conn, ctx, session_id.as_str()).await
    }

    /// Renews every named lease `holder` still holds, in one statement.
    pub async fn renew_leases(
        &self,
        holder: &str,
        ttl_seconds: i32,
        fences: &[(String, i64)],
    ) -> Result<Vec<Lease>, DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::renew_batch(&mut conn, holder, ttl_seconds, fences).await
    }

    /// Takes every named session that is free, expired or already
    /// `holder`'s, in one statement; returns the granted leases.
    pub async fn take_leases(
        &self,
        ctx: &AuditContext,
        holder: &str,
        ttl_seconds: i32,
        session_ids: &[String],
    ) -> Result<Vec<Lease>, DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::take_batch(&mut conn, ctx, holder, ttl_seconds, session_ids).await
    }

    /// Releases every named lease `holder` still holds at that fence, in
    /// one statement; returns the released session ids.
    pub async fn release_leases(
        &self,
        ctx: &AuditContext,
        holder: &str,
        fences: &[(String, i64)],
    ) -> Result<Vec<String>, DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::release_batch(&mut conn, ctx, holder, fences).await
    }

    /// A boot loader's heartbeat: the live holders, itself included.
    pub async fn announce_holder(
        &self,
        holder: &str,
        ttl_seconds: i32,
    ) -> Result<Vec<String>, DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::heartbeat(&mut conn, holder, ttl_seconds).await
    }

    /// A boot loader that stops withdraws its heartbeat.
    pub async fn withdraw_holder(&self, holder: &str) -> Result<(), DbError> {
        let mut conn = self.flushed_conn().await?;
        leases::leave(&mut conn, holder).await
    }

    /// The live leases of the named sessions, by session id (for listings).
    pub async fn live_leases(
        &self,
        session_ids: &[&str],
    ) -> Result<HashMap<String, Lease>, DbError> {
        let mut conn = self.conn().await?;
        leases::live_for(&mut conn, session_ids).await
    }
}
