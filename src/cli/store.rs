//! The one way every database command opens the store, so they all agree on
//! configuration, TLS, the master key source and the key check.

use diesel_async::AsyncPgConnection;

use crate::config::{self, Env};
use crate::crypto::MasterKeys;
use crate::db::{DatabaseTarget, Vault, keys};

use super::CliError;

/// A connection and the unlocked data keys.
pub struct Store {
    pub conn: AsyncPgConnection,
    pub vault: Vault,
}

/// `DATABASE_URL`, parsed: the one place every command reads it.
pub fn target(env: &dyn Env) -> Result<DatabaseTarget, CliError> {
    Ok(DatabaseTarget::parse(&config::database_url(env)?)?)
}

/// A connection to `DATABASE_URL`, for commands that read no secret.
pub async fn connect(env: &dyn Env) -> Result<AsyncPgConnection, CliError> {
    Ok(target(env)?.connect().await?)
}

/// A connection and the vault: the master key is read from its configured
/// source (and derived, for a passphrase), then checked against the stored
/// data keys before anything is decrypted or sealed.
pub async fn open(env: &dyn Env) -> Result<Store, CliError> {
    // Read every piece of configuration before connecting, so a missing key
    // is reported as such even when the database is down too.
    let url = config::database_url(env)?;
    let source = config::master_key_source(env)?;
    let previous = config::previous_master_key(env)?;
    let target = DatabaseTarget::parse(&url)?;
    let mut conn = target.connect().await?;
    let current = keys::unlock(&mut conn, source).await?;
    let vault = Vault::open(&mut conn, MasterKeys::new(current, previous)).await?;
    Ok(Store { conn, vault })
}
