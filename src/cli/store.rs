//! The one way every database command opens the store, so they all agree on
//! configuration, TLS, the master key source and the key check.

use diesel_async::AsyncPgConnection;

use crate::config::{self, Env};
use crate::db::{DatabaseTarget, Vault, keys};
use crate::kek::{Kek, Keks};

use super::CliError;

/// A connection and the unlocked data keys.
pub struct Store {
    pub conn: AsyncPgConnection,
    pub vault: Vault,
}

/// What every command sets on a target it parsed: the prepared-statement
/// switch, and a bound on each host's connection attempt (libpq's
/// connect_timeout) for the listeners and the one-connection commands too,
/// not only the pool: an unreachable first host must not hide the next one
/// for the OS's TCP timeout (minutes).
fn configure(target: &mut DatabaseTarget, prepared: bool) {
    target.set_prepared_statements(prepared);
    target.default_connect_timeout(crate::db::PoolSettings::default().connect_timeout);
}

/// `DATABASE_URL`, parsed: the one place every command reads it. It may be
/// a transaction-mode pooler: nothing run through it assumes session state.
pub fn target(env: &dyn Env) -> Result<DatabaseTarget, CliError> {
    let prepared = config::prepared_statements(env)?;
    let mut target = DatabaseTarget::parse(&config::database_url(env)?)?;
    configure(&mut target, prepared);
    Ok(target)
}

/// The session-capable connection (`DATABASE_DIRECT_URL`, by default
/// `DATABASE_URL`): LISTEN, session advisory locks, migrations.
pub fn direct_target(env: &dyn Env) -> Result<DatabaseTarget, CliError> {
    let Some(url) = config::database_direct_url(env) else {
        return target(env);
    };
    let prepared = config::prepared_statements(env)?;
    let mut target =
        DatabaseTarget::parse(&url).map_err(|e| e.for_variable("DATABASE_DIRECT_URL"))?;
    configure(&mut target, prepared);
    Ok(target)
}

/// [`direct_target`], proven to be one server session (it hears its own
/// NOTIFY): refuses, with the reason, a transaction-mode pooler where LISTEN
/// and session advisory locks would silently not work.
pub async fn direct_session(env: &dyn Env) -> Result<DatabaseTarget, CliError> {
    let target = direct_target(env)?;
    match crate::db::listen::require_session(&target).await {
        Ok(()) => Ok(target),
        Err(crate::db::listen::Lost::Deaf) => {
            Err(CliError::new(CliError::CONFIG, crate::db::listen::DEAF))
        }
        Err(crate::db::listen::Lost::Db(e)) => Err(e.into()),
    }
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
    config::database_url(env)?;
    let source = config::master_key_source(env)?;
    let previous = config::previous_master_key(env)?;
    let target = target(env)?;
    let mut conn = target.connect().await?;
    let current = keys::unlock_kek(&mut conn, source).await?;
    let vault = Vault::open(&mut conn, Keks::new(current, previous.map(Kek::Local))).await?;
    Ok(Store { conn, vault })
}
