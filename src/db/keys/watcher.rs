//! Makes a running process follow key changes made elsewhere: it LISTENs on
//! `vibee_keys` and reloads the ring on every notification, and reloads every
//! `refresh` anyway (a notification sent while we were disconnected is lost;
//! the periodic reload bounds how stale the ring can get).

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::db::connection::DatabaseTarget;
use crate::db::error::DbError;

use super::Vault;
use super::lifecycle::KEYS_CHANNEL;

/// The fallback reload interval. `rotate` waits a grace period longer than
/// this before retiring a key (see docs/KEY_ROTATION.md).
pub const DEFAULT_KEY_REFRESH: Duration = Duration::from_secs(10);

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the watcher on its own connection (a LISTEN needs a connection that
/// stays open, so it never comes from the pool). It runs until aborted,
/// reconnecting with exponential backoff while the database is away.
pub fn spawn_key_watcher(
    target: DatabaseTarget,
    vault: Arc<Vault>,
    refresh: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            let err = watch(&target, &vault, refresh, &mut backoff).await;
            tracing::warn!(
                error = %err,
                retry_in_ms = backoff.as_millis() as u64,
                "key watcher lost its database connection; reconnecting"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// One connection's life: returns only when the connection fails.
async fn watch(
    target: &DatabaseTarget,
    vault: &Vault,
    refresh: Duration,
    backoff: &mut Duration,
) -> DbError {
    let mut conn = match target.connect().await {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    if let Err(e) = diesel::sql_query(format!("LISTEN {KEYS_CHANNEL}"))
        .execute(&mut conn)
        .await
    {
        return e.into();
    }
    *backoff = MIN_BACKOFF;
    tracing::debug!(channel = KEYS_CHANNEL, "key watcher listening");
    loop {
        // Catch up first: changes made while we were not listening sent
        // notifications nobody heard.
        if let Err(e) = reload(&mut conn, vault).await {
            return e;
        }
        // The stream borrows the connection, so it lives only while waiting.
        let event = {
            let mut stream = std::pin::pin!(conn.notifications_stream());
            tokio::select! {
                n = stream.next() => Some(n),
                () = tokio::time::sleep(refresh) => None,
            }
        };
        match event {
            None => {}
            Some(Some(Ok(n))) => {
                tracing::debug!(payload = %n.payload, "key change announced");
            }
            Some(Some(Err(e))) => return e.into(),
            Some(None) => {
                return DbError::Unavailable("the notification stream ended".into());
            }
        }
    }
}

/// Reloads the ring. A key error (say, the data keys were just re-wrapped
/// under a master key this process does not hold) keeps the ring in memory,
/// which still opens and seals everything it did: the process keeps serving
/// and says why it cannot follow.
async fn reload(conn: &mut AsyncPgConnection, vault: &Vault) -> Result<(), DbError> {
    let before = vault.ring().primary_id();
    match vault.reload(conn).await {
        Ok(ring) if ring.primary_id() != before => {
            tracing::info!(
                previous_primary = before.0,
                primary = ring.primary_id().0,
                "key ring reloaded: new primary data key"
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(DbError::Key(e)) => {
            tracing::error!(error = %e, "cannot reload the key ring; keeping the one in memory");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
