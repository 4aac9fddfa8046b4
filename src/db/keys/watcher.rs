//! Makes a running process follow key changes made elsewhere: it LISTENs on
//! `vibee_keys` and reloads the ring on every notification, and reloads every
//! `refresh` anyway (a notification sent while we were disconnected is lost;
//! the periodic reload bounds how stale the ring can get). The periodic
//! reload also runs through the pool (`spawn_pool_refresh`), so a listener
//! that cannot reconnect does not take the fallback down with it.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use tokio::task::JoinHandle;

use crate::db::Pool;
use crate::db::connection::DatabaseTarget;
use crate::db::error::DbError;
use crate::db::listen::{Backoff, Lost, Wake, spawn_listener};
use crate::db::writable::{READ_ONLY_SQL, refuse_read_only};

use super::Vault;
use super::lifecycle::KEYS_CHANNEL;

/// The fallback reload interval. `rotate` waits a grace period longer than
/// this before retiring a key (see docs/KEY_ROTATION.md).
pub const DEFAULT_KEY_REFRESH: Duration = Duration::from_secs(10);

/// Starts the watcher: every notification, and every `refresh` without one,
/// reloads the ring (the first reload also catches up on changes made while
/// nobody was listening).
pub fn spawn_key_watcher(
    target: DatabaseTarget,
    vault: Arc<Vault>,
    refresh: Duration,
) -> JoinHandle<()> {
    spawn_listener(
        target,
        KEYS_CHANNEL,
        refresh,
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
        },
        move |conn, wake| {
            if let Wake::Notified(payload) = &wake {
                tracing::debug!(%payload, "key change announced");
            }
            let vault = vault.clone();
            Box::pin(async move {
                refuse_read_only(conn, READ_ONLY_SQL, "key watcher").await?;
                reload(conn, &vault).await
            })
        },
        move |lost, delay| match lost {
            Lost::Deaf => tracing::error!(
                error = %lost,
                retry_in_ms = delay.as_millis() as u64,
                refresh_secs = refresh.as_secs(),
                "key watcher cannot LISTEN: key changes by other processes are picked up only \
                 by the periodic reload, every KEY_REFRESH_SECS"
            ),
            Lost::Db(_) => tracing::warn!(
                error = %lost,
                retry_in_ms = delay.as_millis() as u64,
                "key watcher lost its database connection; reconnecting"
            ),
        },
    )
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

/// Reloads the ring through the pool every `refresh`, whatever the listener
/// is doing. When a reload fails, the ring ages; past its allowance
/// (`Vault::staleness`) the process stops encrypting until one succeeds.
pub fn spawn_pool_refresh(pool: Pool, vault: Arc<Vault>, refresh: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let reloaded = match pool.get().await {
                Ok(mut conn) => reload(&mut conn, &vault).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = reloaded {
                tracing::warn!(error = %e, "periodic key ring reload through the pool failed");
            }
            // Logs the moment the ring turns stale (once), even with no write.
            let _ = vault.staleness();
        }
    })
}
