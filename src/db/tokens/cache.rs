//! A short-lived cache of verified tokens, so a request does not cost a
//! database round trip for its token check.
//!
//! Revocation still stops a token within milliseconds on every replica: a
//! trigger on `api_tokens` (migration `token_change_notify`) NOTIFYs
//! `vibee_tokens` at the commit of any revocation, deletion or change, and
//! every server LISTENs and empties its cache when told. The cache is used
//! only while that listener is connected and has been heard from within
//! `TRUST_WINDOW`: it pings after every `KEEPALIVE` of quiet, so a listener
//! whose connection died silently (a hung backend, a dropped route: no error,
//! no notification) turns the cache off by itself `TRUST_WINDOW` after its
//! last sign of life, without waiting for the listener task to notice. That
//! is the bound on what a silently dead listener can make a replica miss.
//!
//! Keys are SHA-256 digests of the presented secrets (what the database
//! stores), never the secrets. Unknown or revoked tokens are not cached: each
//! attempt with one goes to the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{TokenHash, TokenIdentity};
use crate::db::connection::DatabaseTarget;
use crate::db::error::DbError;
use crate::db::listen::{Backoff, Lost, Wake, spawn_listener};

/// The channel the trigger notifies on.
pub const TOKENS_CHANNEL: &str = "vibee_tokens";

/// How long a verified token is trusted without asking the database, should
/// a notification be lost.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Entries kept at most; past it the cache is emptied (it refills in one
/// request per token).
const MAX_ENTRIES: usize = 10_000;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The listener pings after this much quiet.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// How long after the listener's last sign of life the cache is trusted.
pub const TRUST_WINDOW: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct TokenCache {
    entries: Mutex<HashMap<TokenHash, (TokenIdentity, Instant)>>,
    /// Digests the database did not know (or knew as revoked), so a bogus
    /// token presented again and again costs one query per TTL, not one per
    /// request. Only ever denies; emptied on every announced token change.
    unknown: Mutex<HashMap<TokenHash, Instant>>,
    /// Whether the listener is connected and listening.
    live: AtomicBool,
    /// Bumped on every invalidation: a lookup that started before one must
    /// not insert what it read.
    generation: AtomicU64,
    /// When the listener last proved it hears notifications, in
    /// milliseconds since `born` (0: never).
    heard_ms: AtomicU64,
    born: Instant,
    ttl: Duration,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(TOKEN_CACHE_TTL)
    }
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            heard_ms: AtomicU64::new(0),
            born: Instant::now(),
            ttl,
        }
    }

    /// The listener is alive as of now: a LISTEN, a notification or a ping
    /// answered.
    fn heard(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.heard_ms.store(ms.max(1), Ordering::Release);
    }

    /// Connected, and heard from within `TRUST_WINDOW`.
    fn trusted(&self) -> bool {
        if !self.live.load(Ordering::Acquire) {
            return false;
        }
        let heard = self.heard_ms.load(Ordering::Acquire);
        let now = self.born.elapsed().as_millis() as u64;
        heard != 0 && now.saturating_sub(heard) <= TRUST_WINDOW.as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, (TokenIdentity, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached identity for a token digest, if fresh and the listener is up.
    pub fn get(&self, digest: &TokenHash) -> Option<TokenIdentity> {
        if !self.trusted() {
            return None;
        }
        let entries = self.lock();
        let (identity, at) = entries.get(digest)?;
        (at.elapsed() < self.ttl).then(|| identity.clone())
    }

    /// The generation to pass to `insert` after a database lookup.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what a lookup that began at `generation` found, unless an
    /// invalidation happened since (or the listener is down).
    pub fn insert(&self, digest: TokenHash, identity: TokenIdentity, generation: u64) {
        if !self.trusted() {
            return;
        }
        let mut entries = self.lock();
        // Checked under the lock that `invalidate` takes: no stale insert
        // can land after an invalidation has cleared the map.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(digest, (identity, Instant::now()));
    }

    /// Whether `digest` was looked up and not found within the TTL.
    pub fn known_unknown(&self, digest: &TokenHash) -> bool {
        let unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        unknown
            .get(digest)
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// Remembers a digest the database did not know, unless a token change
    /// was announced since the lookup began (`generation`).
    pub fn insert_unknown(&self, digest: TokenHash, generation: u64) {
        let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if unknown.len() >= MAX_ENTRIES {
            unknown.clear();
        }
        unknown.insert(digest, Instant::now());
    }

    /// Forgets every token.
    pub fn invalidate(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.unknown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn set_live(&self, live: bool) {
        let mut entries = self.lock();
        self.live.store(live, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    pub fn is_live(&self) -> bool {
        self.trusted()
    }
}

/// Starts the listener. While it listens the cache may be trusted; a lost
/// connection turns the cache off until it listens again.
pub fn spawn_token_watcher(target: DatabaseTarget, cache: Arc<TokenCache>) -> JoinHandle<()> {
    let lost = cache.clone();
    spawn_listener(
        target,
        TOKENS_CHANNEL,
        KEEPALIVE,
        Backoff {
            min: MIN_BACKOFF,
            max: MAX_BACKOFF,
        },
        move |conn, wake| {
            let cache = cache.clone();
            Box::pin(async move {
                match wake {
                    Wake::Listening => {
                        cache.heard();
                        cache.set_live(true);
                    }
                    Wake::Notified(op) => {
                        cache.invalidate();
                        cache.heard();
                        tracing::debug!(%op, "token change announced; token cache emptied");
                    }
                    // Quiet for a keep-alive: make sure the connection is
                    // still there. Until it answers, `trusted` runs out on
                    // its own.
                    Wake::Idle => {
                        ping(conn).await?;
                        cache.heard();
                    }
                }
                Ok(())
            })
        },
        move |err, delay| {
            lost.set_live(false);
            match err {
                Lost::Deaf => tracing::error!(
                    error = %err,
                    retry_in_ms = delay.as_millis() as u64,
                    "token watcher cannot LISTEN: the token cache stays off, every token check \
                     goes to the database"
                ),
                Lost::Db(_) => tracing::warn!(
                    error = %err,
                    retry_in_ms = delay.as_millis() as u64,
                    "token watcher lost its database connection; token checks go to the database until it is back"
                ),
            }
        },
    )
}

/// Named, so an operator (or a test) can tell the listener's connection in
/// `pg_stat_activity`.
/// It also asks whether the server still takes writes: a listener on a
/// server that turned read-only hears no revocation again (`db::writable`).
pub const KEEPALIVE_SQL: &str = "SELECT current_setting('transaction_read_only') AS read_only \
     -- vibee_tokens listener keep-alive";

async fn ping(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), DbError> {
    let check = crate::db::writable::refuse_read_only(conn, KEEPALIVE_SQL, "token watcher");
    match tokio::time::timeout(PING_TIMEOUT, check).await {
        Ok(result) => result,
        Err(_) => Err(DbError::Unavailable(
            "the token watcher's ping timed out".into(),
        )),
    }
}
