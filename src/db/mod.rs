//! PostgreSQL: connections, pool, migrations, schema, and the queries of each model.

pub mod activity;
mod connection;
mod error;
pub mod grants;
pub mod keys;
pub mod leases;
pub(crate) mod listen;
pub mod migrate;
pub mod overview;
mod pool;
pub mod schema;
pub mod sessions;
pub mod stats;
mod store;
mod text_enum;
mod timeouts;
pub mod tokens;
mod writable;

pub use connection::{ConnectError, DatabaseTarget, is_loopback_name};
pub use error::DbError;
pub use keys::{MasterKeySource, Vault};
pub use pool::{Pool, PoolSettings, PooledConnection, build_pool};
pub use store::Store;
pub use timeouts::check_timeouts;
