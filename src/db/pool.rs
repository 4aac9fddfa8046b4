use std::sync::Arc;
use std::time::Duration;

use deadpool::Runtime;
use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
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
            target
                .connect()
                .await
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))
        }
        .boxed()
    });
    // The URL argument is unused: custom_setup connects through the target.
    let manager = AsyncDieselConnectionManager::new_with_config("", config);
    DeadPool::builder(manager)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .build()
        .expect("a pool with a runtime and timeouts always builds")
}
