//! PostgreSQL: connections, pool, migrations, schema, and the queries of each model.

mod connection;

pub use connection::{ConnectError, DatabaseTarget};
