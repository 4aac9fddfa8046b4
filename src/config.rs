//! Configuration from the environment (and `.env` when present). Secret values
//! are wrapped the moment they are read and never logged.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::crypto::{KeyError, MasterKey};
use crate::db::MasterKeySource;

/// Where a master key file is looked for when `MASTER_KEY_FILE` is not set.
pub const DEFAULT_MASTER_KEY_FILE: &str = "keys/master.key";
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "DATABASE_URL is not set; set it to the PostgreSQL database to use, \
         e.g. postgres://postgres@127.0.0.1:5432/vibee_sessions"
    )]
    NoDatabaseUrl,
    #[error(
        "no master key is configured: set MASTER_KEY (base64), MASTER_KEY_FILE, or \
         MASTER_PASSPHRASE, or create {DEFAULT_MASTER_KEY_FILE} with `vibee-sessions keygen --out {DEFAULT_MASTER_KEY_FILE}`"
    )]
    NoMasterKey,
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error(
        "{first} and {second} are both set: the master key comes from one source; unset one \
         (to move between them, see `vibee-sessions rotate-master --help`)"
    )]
    TwoMasterKeys {
        first: &'static str,
        second: &'static str,
    },
    #[error("{0}")]
    Transit(#[from] crate::transit::SettingsError),
    #[error("{name} must be one of {expected}, not {value:?}")]
    BadChoice {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{name} must be a whole number from {min} to {max}")]
    BadNumber {
        name: &'static str,
        min: u64,
        max: u64,
    },
}

/// Reads `./.env` (the working directory only: never a parent's) when there
/// is one, literally (`crate::envfile`: no `${VAR}` expansion). Variables
/// already set in the environment win. The file must be owned by this user
/// or root and writable by no one else, checked on the open file: whoever
/// can write it chooses the database and the master key.
pub fn load_dotenv() -> Result<(), String> {
    use crate::crypto::private_file::{self, FileError, Rules};
    let path = Path::new(".env");
    let bytes = match private_file::read(path, "the .env file", Rules::Owned) {
        Ok(b) => b,
        Err(e) if matches!(&e.error, FileError::Unreadable { .. }) && !path.exists() => {
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| "./.env is not UTF-8 text".to_owned())?;
    let pairs = crate::envfile::parse(text).map_err(|e| format!("./.env: {e}"))?;
    for (name, value) in pairs {
        if std::env::var_os(&name).is_none() {
            // SAFETY: called first thing in `main`, before any thread starts.
            unsafe { std::env::set_var(&name, value.as_str()) };
        }
    }
    Ok(())
}

pub use crate::environment::{Env, ProcessEnv};

pub fn database_url(env: &dyn Env) -> Result<String, ConfigError> {
    env.get("DATABASE_URL").ok_or(ConfigError::NoDatabaseUrl)
}

/// `DATABASE_DIRECT_URL`: the session-capable connection (LISTEN, session
/// advisory locks, migrations), when `DATABASE_URL` is a transaction-mode
/// pooler. `None`: the same as `DATABASE_URL`.
pub fn database_direct_url(env: &dyn Env) -> Option<String> {
    env.get("DATABASE_DIRECT_URL")
}

/// `DATABASE_PREPARED_STATEMENTS`: `on` (default: named statements, cached
/// per connection) or `off` (every query an unnamed statement, parsed, bound
/// and run in one round trip: what a transaction-mode pooler without
/// prepared-statement support, such as PgBouncer < 1.21, can route).
pub fn prepared_statements(env: &dyn Env) -> Result<bool, ConfigError> {
    match env
        .get("DATABASE_PREPARED_STATEMENTS")
        .as_deref()
        .map(str::trim)
    {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(ConfigError::BadChoice {
            name: "DATABASE_PREPARED_STATEMENTS",
            value: other.to_owned(),
            expected: "on, off",
        }),
    }
}

/// The master key source, by precedence: `MASTER_KEY`, `MASTER_KEY_FILE`,
/// `MASTER_PASSPHRASE`, then `keys/master.key` when it exists. An explicit
/// passphrase beats the implicit default file, so a stray development key
/// can never silently stand in for the configured one.
///
/// `MASTER_KEY_TRANSIT_KEY` (a key in an OpenBao/Vault transit engine) is the
/// master key when set, and may not be set beside another source.
pub fn master_key_source(env: &dyn Env) -> Result<MasterKeySource, ConfigError> {
    if let Some(key) = env.get("MASTER_KEY_TRANSIT_KEY") {
        if let Some(other) = ["MASTER_KEY", "MASTER_KEY_FILE", "MASTER_PASSPHRASE"]
            .into_iter()
            .find(|v| env.get(v).is_some())
        {
            return Err(ConfigError::TwoMasterKeys {
                first: "MASTER_KEY_TRANSIT_KEY",
                second: other,
            });
        }
        return Ok(MasterKeySource::Transit(
            crate::transit::TransitSettings::from_env(env, &key, "MASTER_KEY_TRANSIT_KEY")?,
        ));
    }
    if let Some(encoded) = env.get("MASTER_KEY") {
        let encoded = SecretString::from(encoded);
        return Ok(MasterKeySource::Key(key_from_secret(
            &encoded,
            "MASTER_KEY",
        )?));
    }
    if let Some(path) = env.get("MASTER_KEY_FILE") {
        return Ok(MasterKeySource::Key(MasterKey::from_file(Path::new(
            &path,
        ))?));
    }
    if let Some(passphrase) = env.get("MASTER_PASSPHRASE") {
        return Ok(MasterKeySource::Passphrase(SecretString::from(passphrase)));
    }
    let default = PathBuf::from(DEFAULT_MASTER_KEY_FILE);
    if default.exists() {
        return Ok(MasterKeySource::Key(MasterKey::from_file(&default)?));
    }
    Err(ConfigError::NoMasterKey)
}

/// The previous master key during a master key rotation, if configured.
pub fn previous_master_key(env: &dyn Env) -> Result<Option<MasterKey>, ConfigError> {
    if let Some(encoded) = env.get("MASTER_KEY_PREVIOUS") {
        let encoded = SecretString::from(encoded);
        return Ok(Some(key_from_secret(&encoded, "MASTER_KEY_PREVIOUS")?));
    }
    if let Some(path) = env.get("MASTER_KEY_PREVIOUS_FILE") {
        return Ok(Some(MasterKey::from_file(Path::new(&path))?));
    }
    Ok(None)
}

fn key_from_secret(encoded: &SecretString, name: &str) -> Result<MasterKey, KeyError> {
    use secrecy::ExposeSecret;
    MasterKey::from_base64(encoded.expose_secret(), name)
}

pub fn listen_addr(env: &dyn Env) -> String {
    env.get("LISTEN_ADDR")
        .unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned())
}

/// An optional whole-number setting (`name`), within `min..=max`.
pub fn number(
    env: &dyn Env,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or(ConfigError::BadNumber { name, min, max }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

pub fn log_format(env: &dyn Env) -> LogFormat {
    match env.get("LOG_FORMAT").as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Pretty,
    }
}

/// Logs go to stderr (stdout carries command output such as tokens and keys);
/// the filter defaults to INFO.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
