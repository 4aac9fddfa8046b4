//! LISTEN on a channel for the life of the process: its own connection (a
//! LISTEN needs one that stays open, so never one from the pool), reconnected
//! with exponential backoff while the database is away. The key watcher and
//! the token cache both stand on it; each says what a wake-up means to it.
//!
//! A LISTEN only hears anything on a connection that stays one server
//! session. Through a transaction-mode pooler (`DATABASE_DIRECT_URL` pointed
//! at PgBouncer, or left to default to a pooled `DATABASE_URL`) the LISTEN
//! succeeds on whatever server connection runs it, which then goes back to
//! the pooler's pool: notifications reach nobody, silently. So every
//! connection proves it hears before it counts as listening: it LISTENs on a
//! channel of its own as well, and a second connection NOTIFYs that channel;
//! without the notification within `PROBE_TIMEOUT` the connection is
//! dropped as deaf ([`Lost::Deaf`]) and the caller falls back (see each
//! watcher), then retries with backoff.

use std::time::Duration;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;

use super::connection::DatabaseTarget;
use super::error::DbError;

/// How long a probe notification may take to arrive. On a real session it
/// takes milliseconds.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a listening connection was given up.
#[derive(Debug)]
pub(crate) enum Lost {
    Db(DbError),
    /// LISTEN went through but the probe notification never arrived: the
    /// connection is not one server session (a transaction-mode pooler).
    Deaf,
}

impl From<DbError> for Lost {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

impl From<diesel::result::Error> for Lost {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => e.fmt(f),
            Self::Deaf => f.write_str(DEAF),
        }
    }
}

/// What a deaf connection means, for logs and the start-up refusal.
pub const DEAF: &str = "notifications do not reach the LISTEN connection (a probe NOTIFY \
     sent from a second connection did not arrive): DATABASE_DIRECT_URL (by default \
     DATABASE_URL) goes through a transaction-mode pooler. Point DATABASE_DIRECT_URL at \
     PostgreSQL itself or at a session-mode pooler (docs/DEPLOYMENT.md)";

/// Proves `target` gives a real server session: one connection LISTENs, a
/// second NOTIFYs, the first must hear it. `serve`, `migrate` and `rotate`
/// run this before relying on LISTEN or a session advisory lock.
pub(crate) async fn require_session(target: &DatabaseTarget) -> Result<(), Lost> {
    let mut conn = target.connect().await.map_err(DbError::from)?;
    let probe = probe_channel();
    conn.batch_execute(&format!("LISTEN {probe}")).await?;
    hears_probe(&mut conn, target, &probe).await
}

/// A channel no other connection listens on.
fn probe_channel() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("vibee_probe_{}", hex::encode(bytes))
}

/// NOTIFYs `probe` from a second connection and waits for it on `conn`.
async fn hears_probe(
    conn: &mut AsyncPgConnection,
    target: &DatabaseTarget,
    probe: &str,
) -> Result<(), Lost> {
    let notifier = target.connect_client().await.map_err(DbError::from)?;
    // The simple protocol: no prepared statement, whatever sits in between.
    notifier
        .batch_execute(&format!("NOTIFY {probe}"))
        .await
        .map_err(|e| DbError::Unavailable(format!("cannot send the LISTEN probe: {e}")))?;
    drop(notifier);
    let mut stream = std::pin::pin!(conn.notifications_stream());
    let heard = tokio::time::timeout(PROBE_TIMEOUT, async {
        while let Some(n) = stream.next().await {
            // Notifications on the real channel that arrive meanwhile are
            // covered by the `Listening` wake-up that follows.
            if n?.channel == probe {
                return Ok(());
            }
        }
        Err(Lost::Db(DbError::Unavailable(
            "the notification stream ended".into(),
        )))
    })
    .await;
    match heard {
        Ok(r) => r,
        Err(_) => Err(Lost::Deaf),
    }
}

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
    L: FnMut(&Lost, Duration) + Send + 'static,
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
) -> Lost
where
    W: for<'c> FnMut(&'c mut AsyncPgConnection, Wake) -> BoxFuture<'c, Result<(), DbError>>,
{
    let mut conn = match target.connect().await {
        Ok(c) => c,
        Err(e) => return DbError::from(e).into(),
    };
    let probe = probe_channel();
    // Named, so an operator (or a chaos test) can tell it in pg_stat_activity,
    // where its last query reads `LISTEN <channel>` until the first ping.
    for statement in [
        format!("SET application_name = 'vibee-sessions listen {channel}'"),
        format!("LISTEN {probe}"),
        format!("LISTEN {channel}"),
    ] {
        // The simple protocol: no prepared statement, whatever sits in between.
        if let Err(e) = conn.batch_execute(&statement).await {
            return e.into();
        }
    }
    if let Err(e) = hears_probe(&mut conn, target, &probe).await {
        return e;
    }
    connected();
    tracing::debug!(channel, "listening");
    let mut wake = Wake::Listening;
    loop {
        if let Err(e) = on_wake(&mut conn, wake).await {
            return e.into();
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
            // A late probe: nothing to announce.
            Some(Some(Ok(n))) if n.channel == probe => Wake::Idle,
            Some(Some(Ok(n))) => Wake::Notified(n.payload),
            Some(Some(Err(e))) => return e.into(),
            Some(None) => {
                return DbError::Unavailable("the notification stream ended".into()).into();
            }
        };
    }
}
