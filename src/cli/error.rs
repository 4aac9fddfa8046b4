use std::fmt;

use crate::config::ConfigError;
use crate::crypto::KeyError;
use crate::db::{ConnectError, DbError};

/// A failed command: what to tell the operator, and the exit code that tells
/// a script what kind of failure it was.
#[derive(Debug)]
pub struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    /// Something failed while doing the work.
    pub const FAILURE: u8 = 1;
    /// Configuration or key material is missing or wrong.
    pub const CONFIG: u8 = 3;
    /// The database could not be reached.
    pub const DATABASE: u8 = 4;
    /// The named session (or user) does not exist.
    pub const NOT_FOUND: u8 = 10;
    /// `boot`: the tenant's session is deactivated.
    pub const INACTIVE: u8 = 11;
    /// `boot --all`: there is no active session to start.
    pub const NO_ACTIVE_SESSIONS: u8 = 12;
    /// `boot --exec --user-id`: another holder has the tenant's lease (or ours was lost).
    pub const LEASE_HELD: u8 = 13;
    /// Input data is malformed or breaks a field rule (sysexits EX_DATAERR).
    pub const DATA: u8 = 65;

    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(Self::FAILURE, message)
    }

    pub fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::new(Self::CONFIG, e.to_string())
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        Self::new(Self::CONFIG, e.to_string())
    }
}

impl From<ConnectError> for CliError {
    fn from(e: ConnectError) -> Self {
        Self::new(Self::DATABASE, e.to_string())
    }
}

impl From<DbError> for CliError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Key(k) => k.into(),
            DbError::Unavailable(m) => Self::new(Self::DATABASE, m),
            DbError::NoSchema => Self::new(Self::DATABASE, DbError::NoSchema.to_string()),
            DbError::Invalid(i) => {
                Self::new(Self::DATA, format!("invalid {}: {}", i.field, i.reason))
            }
            DbError::NotFound => Self::new(Self::NOT_FOUND, "not found"),
            // A running agent's lease: the operator stops it first.
            held @ DbError::LeaseHeld(_) => Self::new(Self::LEASE_HELD, held.to_string()),
            DbError::LeaseRequired => Self::new(
                Self::LEASE_HELD,
                "a live lease holds this session (an agent runs it): its api_hash and blob \
                 are replaced only under that lease's fence; deactivate it (its loader lets \
                 go) or wait for the lease to end, then store it again",
            ),
            DbError::Inactive => Self::new(
                Self::INACTIVE,
                "the session is deactivated: it serves no credentials and takes no writes \
                 until `vibee-sessions session reactivate SESSION_ID`",
            ),
            // The database answered; the schema change did not go through.
            // Not exit 4: nothing is unreachable, retrying will not help.
            DbError::Migration(_) => Self::failure(e.to_string()),
            other => Self::failure(other.to_string()),
        }
    }
}
