//! The agent boot loader: finds the credentials of one tenant or of every
//! active tenant (from the database, the REST API, or the legacy variables)
//! and hands them to the agent as shell variables, JSON, or the environment
//! and an inherited memory file of an `exec`ed process.
//!
//! It uses `db` and `crypto` only; the command line wires it up.

pub mod api;
mod api_leases;
mod child;
pub mod database;
pub mod exec;
pub mod leaser;
pub mod legacy;
pub mod output;
pub mod share;
pub mod supervise;
mod tenant;

pub use tenant::TenantConfig;

use crate::config::Env;
use crate::db::DbError;

/// Which tenants to start, as the original start script chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every active session (`--all` or `MULTI_TENANT=true`).
    All,
    /// One tenant (`--user-id` or `USER_ID`).
    User(String),
    /// The legacy `TELEGRAM_*` variables, passed through; no store involved.
    Legacy,
}

/// Flags win over the environment; `MULTI_TENANT` wins over `USER_ID`, as in
/// the original script.
pub fn resolve_mode(all: bool, user_id: Option<String>, env: &dyn Env) -> Mode {
    if all {
        return Mode::All;
    }
    if let Some(user) = user_id.filter(|u| !u.is_empty()) {
        return Mode::User(user);
    }
    let multi = env
        .get("MULTI_TENANT")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if multi {
        return Mode::All;
    }
    match env.get("USER_ID") {
        Some(user) => Mode::User(user),
        None => Mode::Legacy,
    }
}

/// Why a boot failed. Each kind has its own exit code (see `docs/MULTI_TENANT_SETUP.md`).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("no session for user_id {0}: add it with `vibee-sessions session put` or the API")]
    UnknownUser(String),
    #[error(
        "the session of user_id {0} is deactivated; only an explicit reactivation \
         turns it on again (`vibee-sessions session reactivate SESSION_ID` or \
         POST /api/v1/sessions/{{session_id}}/reactivate)"
    )]
    Inactive(String),
    #[error("there are no active sessions to start")]
    NoActiveSessions,
    /// Another holder has the tenant's lease (`--user-id` without `--wait`).
    #[error(
        "the session of user_id {user_id} is leased to {holder} until {expires_at}; \
         another agent runs it (wait with --wait, or break the lease as an admin)"
    )]
    LeaseHeld {
        user_id: String,
        holder: String,
        expires_at: String,
    },
    /// The supervisor lost its lease (broken, or not renewed in time).
    #[error("{0}")]
    LeaseLost(String),
    /// Missing or wrong configuration: a legacy variable, the token, the URL.
    #[error("{0}")]
    Config(String),
    /// A value that breaks its rule (named, never shown).
    #[error("{0}")]
    Data(String),
    /// The REST API refused the token (401/403).
    #[error("{0}")]
    Denied(String),
    /// The REST API could not be reached or answered 5xx.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failure(String),
    #[error(transparent)]
    Db(#[from] DbError),
}
