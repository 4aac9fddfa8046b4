//! LISTEN on a channel for the life of the process: its own connection (a
//! LISTEN needs one that stays open, so never one from the pool), reconnected
//! with exponential backoff while the database is away. The key watcher and
//! the token cache both stand on it; each says what a wake-up means to it.

use std::time::Duration;

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;

use super::connection::DatabaseTarget;
use super::error::DbError;

/// Why the listener woke its handler.
pub(crate) enum Wake {
    /// LISTEN has just succeeded: changes committed before are in the
    /// database, changes after will be announced.
    Listening,
    /// A notification arrived (its payload).
    Notified(String),
    /// Nothing arrived for `idle`.
    Idle,
}

/// Backoff between reconnection attempts.
pub(crate) struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// Runs until aborted. `on_wake` gets the listening connection; an error it
/// returns drops the connection and reconnects. `on_lost` hears every lost
/// connection with the delay before the next attempt.
pub(crate) fn spawn_listener<W, L>(
    target: DatabaseTarget,
    channel: &'static str,
    idle: Duration,
    backoff: Backoff,
    mut on_wake: W,
    mut on_lost: L,
) -> JoinHandle<()>
where
    W: for<'c> FnMut(&'c mut AsyncPgConnection, Wake) -> BoxFuture<'c, Result<(), DbError>>
        + Send
        + 'static,
    L: FnMut(&DbError, Duration) + Send + 'static,
{
    tokio::spawn(async move {
        let mut delay = backoff.min;
        loop {
            let err = listen(&target, channel, idle, &mut on_wake, || delay = backoff.min).await;
            on_lost(&err, delay);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(backoff.max);
        }
    })
}

/// One connection's life: returns only when the connection (or the handler) fails.
async fn listen<W>(
    target: &DatabaseTarget,
    channel: &'static str,
    idle: Duration,
    on_wake: &mut W,
    mut connected: impl FnMut(),
) -> DbError
where
    W: for<'c> FnMut(&'c mut AsyncPgConnection, Wake) -> BoxFuture<'c, Result<(), DbError>>,
{
    let mut conn = match target.connect().await {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    // Named, so an operator (or a chaos test) can tell it in pg_stat_activity.
    for statement in [
        format!("SET application_name = 'vibee-sessions listen {channel}'"),
        format!("LISTEN {channel}"),
    ] {
        if let Err(e) = diesel::sql_query(statement).execute(&mut conn).await {
            return e.into();
        }
    }
    connected();
    tracing::debug!(channel, "listening");
    let mut wake = Wake::Listening;
    loop {
        if let Err(e) = on_wake(&mut conn, wake).await {
            return e;
        }
        // The stream borrows the connection, so it lives only while waiting.
        let event = {
            let mut stream = std::pin::pin!(conn.notifications_stream());
            tokio::select! {
                n = stream.next() => Some(n),
                () = tokio::time::sleep(idle) => None,
            }
        };
        wake = match event {
            None => Wake::Idle,
            Some(Some(Ok(n))) => Wake::Notified(n.payload),
            Some(Some(Err(e))) => return e.into(),
            Some(None) => return DbError::Unavailable("the notification stream ended".into()),
        };
    }
}
