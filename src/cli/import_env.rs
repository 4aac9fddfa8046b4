//! `vibee-sessions import-env`: moves a legacy `.env` client into the store.
//! Everything is read and checked before the database is touched, so a bad
//! file changes nothing; the one write is `sessions::upsert` (parameterised,
//! idempotent by `user_id`).

use std::path::PathBuf;

use clap::Args;
use secrecy::ExposeSecret;

use crate::boot::legacy::{self, LegacyError, Names};
use crate::config::Env;
use crate::crypto::private_file::Rules;
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

/// Variables read from the process environment (`USERNAME` is left out:
/// there it is the login name, not the Telegram username).
const PROCESS_VARS: [&str; 8] = [
    "TELEGRAM_SESSION_ID",
    "TELEGRAM_API_ID",
    "TELEGRAM_API_HASH",
    "TELEGRAM_SESSION_DATA",
    "USER_ID",
    "TELEGRAM_PHONE",
    "PHONE",
    "TELEGRAM_USERNAME",
];

/// A tenant's own file may name the phone and username the short way.
const FILE_NAMES: Names = Names {
    phone: &["TELEGRAM_PHONE", "PHONE"],
    username: &["TELEGRAM_USERNAME", "USERNAME"],
};

const ENV_NAMES: Names = Names {
    phone: &["TELEGRAM_PHONE", "PHONE"],
    username: &["TELEGRAM_USERNAME"],
};

fn data_error(source: &str, message: impl std::fmt::Display) -> CliError {
    CliError::new(CliError::DATA, format!("{source}: {message}"))
}

/// Which variable each field came from, to name it in errors.
struct Origins {
    user_id: &'static str,
    phone: &'static str,
    username: &'static str,
}

fn input_from(vars: &Vars, names: &Names) -> Result<(SessionInput, Origins), CliError> {
    let get = |n: &str| {
        vars.get(n)
            .map(|v| v.expose_secret().trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let client = legacy::parse(&get, names).map_err(|e| match e {
        LegacyError::Missing(name) => data_error(vars.source(), format!("{name} is not set")),
        LegacyError::Invalid(name, rule) => {
            data_error(vars.source(), format!("invalid {name}: {rule}"))
        }
    })?;
    // A legacy client was known by its session id alone: it stays its user_id.
    let (user_origin, user_id) = match get("USER_ID") {
        Some(v) => ("USER_ID", v),
        None => ("TELEGRAM_SESSION_ID", client.session_id.clone()),
    };
    let origins = Origins {
        user_id: user_origin,
        phone: client.phone.as_ref().map_or("TELEGRAM_PHONE", |(n, _)| n),
        username: client
            .username
            .as_ref()
            .map_or("TELEGRAM_USERNAME", |(n, _)| n),
    };
    let input = SessionInput {
        user_id,
        session_id: Some(client.session_id),
        username: client.username.map(|(_, u)| u),
        api_id: client.api_id,
        api_hash: client.api_hash,
        phone: client.phone.map(|(_, p)| p),
        session_data: client.session_data,
        ..Default::default()
    };
    Ok((input, origins))
}

pub async fn run(args: ImportEnvArgs, env: &dyn Env) -> Result<(), CliError> {
    let (vars, names) = match &args.env_file {
        Some(path) => (
            Vars::from_file(path, "--env-file", Rules::Owned)?,
            FILE_NAMES,
        ),
        None => (Vars::from_process_env(&PROCESS_VARS), ENV_NAMES),
    };
    let (input, origins) = input_from(&vars, &names)?;
    input.validate().map_err(|e| {
        let var = match e.field {
            "user_id" => origins.user_id,
            "session_id" => "TELEGRAM_SESSION_ID",
            "api_id" => "TELEGRAM_API_ID",
            "api_hash" => "TELEGRAM_API_HASH",
            "phone" => origins.phone,
            "username" => origins.username,
            "session_data" => "TELEGRAM_SESSION_DATA",
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
