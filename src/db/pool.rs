use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool::Runtime;
use diesel::ConnectionError;
use diesel::connection::InstrumentationEvent;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncConnection as _;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Hook, HookError};
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use futures_util::FutureExt;

use super::connection::DatabaseTarget;

pub type Pool = DeadPool<AsyncPgConnection>;
pub type PooledConnection = Object<AsyncPgConnection>;

/// Pool limits. Every wait is bounded, so a slow or absent database turns into
/// a fast 503 instead of requests piling up.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_size: usize,
    pub wait_timeout: Duration,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
        }
    }
}

pub fn build_pool(target: &DatabaseTarget, settings: &PoolSettings) -> Pool {
    let mut target = target.clone();
    target.set_statement_timeout(settings.statement_timeout);
    target.set_lock_timeout(settings.lock_timeout);
    target.default_connect_timeout(settings.connect_timeout);
    // Each host of a multi-host URL gets its own connect timeout: the pool
    // must wait for all of them, or a dead first host hides the live second.
    let create_timeout = target
        .connect_budget()
        .unwrap_or(settings.connect_timeout)
        .max(settings.connect_timeout);
    let target = Arc::new(target);
    let mut config = ManagerConfig::default();
    // No `SELECT 1` on every checkout (the default, `Verified`): that was a
    // round trip per checkout. A connection that broke is still caught (deadpool
    // drops connections diesel marks broken), and the first query on a dead one
    // fails like any query would.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |_url| {
        let target = Arc::clone(&target);
        async move {
            let mut conn = target
                .connect()
                .await
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
            conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::FinishQuery { error: Some(e), .. } = event
                    && server_is_read_only(e)
                {
                    note_read_only();
                }
            });
            Ok(conn)
        }
        .boxed()
    });
    // The URL argument is unused: custom_setup connects through the target.
    let manager = AsyncDieselConnectionManager::new_with_config("", config);
    DeadPool::builder(manager)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(create_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .pre_recycle(Hook::sync_fn(move |_conn, metrics| {
            if opened_before_read_only(metrics.created) {
                Err(HookError::Message(
                    "opened before its server was found read-only".into(),
                ))
            } else {
                Ok(())
            }
        }))
        .build()
        .expect("a pool with a runtime and timeouts always builds")
}

/// A server that answers "read-only" (SQLSTATE 25006) is a standby, or a
/// primary that was demoted or fenced: every pooled connection opened before
/// that answer is to it (or to a server that was in its place), so none is
/// handed out again. The next checkout opens a new connection, which
/// `target_session_attrs=read-write` sends to the writable server.
///
/// Connections the server closed (a shutdown, `-m immediate`, a crash: SQLSTATE
/// 57P01-57P03 and a dead socket) need nothing here: diesel-async reports them
/// broken and the pool drops each on its next checkout.
///
/// The moment is process-wide: every pool of the process (the request pool,
/// the audit writer's) connects through the same `DATABASE_URL`. It is noted
/// both where an error becomes a `DbError` (the path every request takes)
/// and by each connection's instrumentation: an error a row stream yields
/// after its query started reaches only the first.
static READ_ONLY_SEEN_AT: Mutex<Option<Instant>> = Mutex::new(None);

/// The server answered "read-only" (SQLSTATE 25006) just now.
pub(super) fn note_read_only() {
    *READ_ONLY_SEEN_AT
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
}

fn opened_before_read_only(created: Instant) -> bool {
    READ_ONLY_SEEN_AT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some_and(|seen| created <= seen)
}

fn server_is_read_only(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _)
    )
}
