//! `vibee-sessions import-env`: moves a legacy `.env` client into the store.
//! Everything is read and checked before the database is touched, so a bad
//! file changes nothing; the one write is `sessions::upsert` (parameterised,
//! idempotent by `user_id`).

use std::path::PathBuf;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use crate::config::Env;
use crate::db::DbError;
use crate::db::activity::AuditContext;
use crate::db::sessions::{self, SessionInput, Upserted};

use super::dotenv::Vars;
use super::{CliError, store};

#[derive(Debug, Args)]
pub struct ImportEnvArgs {
    /// The legacy .env file; without it, the process environment is read.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
}

/// Variables read from the process environment. `USERNAME` is left out there:
/// on many systems it is the login name, not the Telegram username.
const PROCESS_VARS: [&str; 7] = [
    "TELEGRAM_SESSION_ID",
    "TELEGRAM_API_ID",
    "TELEGRAM_API_HASH",
    "USER_ID",
    "TELEGRAM_PHONE",
    "PHONE",
    "TELEGRAM_USERNAME",
];

fn data_error(source: &str, message: impl std::fmt::Display) -> CliError {
    CliError::new(CliError::DATA, format!("{source}: {message}"))
}

/// The first of `names` that is set and not empty, with its name.
fn first_of<'a>(
    vars: &'a Vars,
    names: &[&'static str],
) -> Option<(&'static str, &'a SecretString)> {
    names.iter().find_map(|n| {
        vars.get(n)
            .filter(|v| !v.expose_secret().is_empty())
            .map(|v| (*n, v))
    })
}

/// Which variable each field came from, to name it in errors.
struct Origins {
    user_id: &'static str,
    phone: &'static str,
    username: &'static str,
}

fn plain(vars: &Vars, name: &'static str) -> Result<String, CliError> {
    first_of(vars, &[name])
        .map(|(_, v)| v.expose_secret().trim().to_owned())
        .ok_or_else(|| data_error(vars.source(), format!("{name} is not set")))
}

fn input_from(vars: &Vars) -> Result<(SessionInput, Origins), CliError> {
    let session_id = plain(vars, "TELEGRAM_SESSION_ID")?;
    let api_id_text = plain(vars, "TELEGRAM_API_ID")?;
    let api_hash = first_of(vars, &["TELEGRAM_API_HASH"])
        .map(|(_, v)| SecretString::from(v.expose_secret().trim().to_owned()))
        .ok_or_else(|| data_error(vars.source(), "TELEGRAM_API_HASH is not set"))?;
    let api_id = api_id_text.parse::<i32>().map_err(|_| {
        data_error(
            vars.source(),
            "invalid TELEGRAM_API_ID: must be a positive integer",
        )
    })?;
    // A legacy client was known by its session id alone: it stays its user_id.
    let (user_origin, user_id) = match first_of(vars, &["USER_ID"]) {
        Some((n, v)) => (n, v.expose_secret().trim().to_owned()),
        None => ("TELEGRAM_SESSION_ID", session_id.clone()),
    };
    let phone = first_of(vars, &["TELEGRAM_PHONE", "PHONE"]);
    let username = first_of(vars, &["TELEGRAM_USERNAME", "USERNAME"]);
    let origins = Origins {
        user_id: user_origin,
        phone: phone.map_or("TELEGRAM_PHONE", |(n, _)| n),
        username: username.map_or("TELEGRAM_USERNAME", |(n, _)| n),
    };
    let input = SessionInput {
        user_id,
        session_id: Some(session_id),
        username: username.map(|(_, v)| v.expose_secret().trim().to_owned()),
        api_id,
        api_hash,
        phone: phone.map(|(_, v)| SecretString::from(v.expose_secret().trim().to_owned())),
        ..Default::default()
    };
    Ok((input, origins))
}

pub async fn run(args: ImportEnvArgs, env: &dyn Env) -> Result<(), CliError> {
    let vars = match &args.env_file {
        Some(path) => Vars::from_file(path)?,
        None => Vars::from_process_env(&PROCESS_VARS),
    };
    let (input, origins) = input_from(&vars)?;
    input.validate().map_err(|e| {
        let var = match e.field {
            "user_id" => origins.user_id,
            "session_id" => "TELEGRAM_SESSION_ID",
            "api_id" => "TELEGRAM_API_ID",
            "api_hash" => "TELEGRAM_API_HASH",
            "phone" => origins.phone,
            "username" => origins.username,
            other => other,
        };
        data_error(vars.source(), format!("invalid {var}: {}", e.reason))
    })?;
    let mut store = store::open(env).await?;
    let done = sessions::upsert(&mut store.conn, &store.vault, &AuditContext::cli(), &input)
        .await
        .map_err(|e| match e {
            DbError::SessionIdTaken => data_error(
                vars.source(),
                "invalid TELEGRAM_SESSION_ID: already used by another user_id",
            ),
            other => other.into(),
        })?;
    let (verb, meta) = match &done {
        Upserted::Created(m) => ("created", m),
        Upserted::Updated(m) => ("updated", m),
    };
    let defaulted = if origins.user_id == "TELEGRAM_SESSION_ID" {
        " (USER_ID not set: the session id is the user_id)"
    } else {
        ""
    };
    println!(
        "{verb}: user_id {} session_id {} from {}{defaulted}",
        meta.user_id,
        meta.session_id,
        vars.source()
    );
    Ok(())
}
