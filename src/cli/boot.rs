//! `vibee-sessions boot`: argument handling and wiring for `crate::boot`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use crate::boot::api::ApiSource;
use crate::boot::exec::{self, SessionsFile};
use crate::boot::output::{self, JsonArray};
use crate::boot::{BootError, Mode, TenantConfig, database, legacy};
use crate::config::Env;
use crate::crypto::private_file::{self, Rules};
use crate::db::activity::AuditContext;

use super::{CliError, store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `export NAME='value'` lines for one tenant, for eval or source.
    Env,
    /// A JSON array of tenant configurations.
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Mode: --all or MULTI_TENANT=true starts every active session; \
    --user-id or USER_ID one tenant; otherwise the legacy TELEGRAM_SESSION_ID, \
    TELEGRAM_API_ID and TELEGRAM_API_HASH are passed through (no database needed).\n\
    Exit codes: 10 unknown user, 11 session deactivated, 12 no active sessions."
)]
pub struct BootArgs {
    /// Every active session (as MULTI_TENANT=true).
    #[arg(long, conflicts_with = "user_id")]
    all: bool,
    /// One tenant (as USER_ID).
    #[arg(long, value_name = "ID")]
    user_id: Option<String>,
    /// Read from the REST API instead of the database, with the sessions:read
    /// token in VIBEE_TOKEN (or the file VIBEE_TOKEN_FILE): no master key needed.
    #[arg(long, env = "VIBEE_API_URL", value_name = "URL")]
    api_url: Option<String>,
    /// What to print: env (one tenant; the default for one) or json (the default for --all).
    #[arg(long, value_enum, conflicts_with = "exec")]
    format: Option<Format>,
    /// Replace this process with the agent given after `--`: one tenant's
    /// credentials in its environment, or many as JSON in the memory file
    /// whose descriptor number is in VIBEE_SESSIONS_FD.
    #[arg(long, requires = "command")]
    exec: bool,
    /// The agent's command line (after `--`).
    #[arg(last = true, value_name = "CMD", requires = "exec")]
    command: Vec<OsString>,
}

enum Delivery {
    Print(Format),
    Exec(Vec<OsString>),
}

enum Source {
    Database,
    Api(ApiSource),
}

impl From<BootError> for CliError {
    fn from(e: BootError) -> Self {
        let code = match &e {
            BootError::UnknownUser(_) => Self::NOT_FOUND,
            BootError::Inactive(_) => Self::INACTIVE,
            BootError::NoActiveSessions => Self::NO_ACTIVE_SESSIONS,
            BootError::Config(_) | BootError::Denied(_) => Self::CONFIG,
            BootError::Data(_) => Self::DATA,
            BootError::Unavailable(_) => Self::DATABASE,
            BootError::Failure(_) => Self::FAILURE,
            BootError::Db(_) => {
                let BootError::Db(db) = e else { unreachable!() };
                return db.into();
            }
        };
        Self::new(code, e.to_string())
    }
}

fn token(env: &dyn Env) -> Result<SecretString, CliError> {
    if let Some(t) = env.get("VIBEE_TOKEN") {
        return Ok(SecretString::from(t.trim().to_owned()));
    }
    if let Some(path) = env.get("VIBEE_TOKEN_FILE") {
        let path = PathBuf::from(path);
        let bytes = private_file::read(&path, "VIBEE_TOKEN_FILE", Rules::Private)
            .map_err(|e| CliError::new(CliError::CONFIG, e.to_string()))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            CliError::new(
                CliError::CONFIG,
                format!("VIBEE_TOKEN_FILE {} is not UTF-8 text", path.display()),
            )
        })?;
        return Ok(SecretString::from(text.trim().to_owned()));
    }
    Err(CliError::new(
        CliError::CONFIG,
        "--api-url needs a sessions:read token in VIBEE_TOKEN or VIBEE_TOKEN_FILE",
    ))
}

fn source(args: &BootArgs, env: &dyn Env) -> Result<Source, CliError> {
    match &args.api_url {
        Some(url) => {
            // The URL (and its cleartext warning) before the token: a
            // misconfigured host hears about both.
            if let Some(warning) = crate::boot::api::cleartext_warning(url.trim_end_matches('/')) {
                tracing::warn!("{warning}");
            }
            Ok(Source::Api(ApiSource::new(url, token(env)?)?))
        }
        None => Ok(Source::Database),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}

pub fn run(args: BootArgs, env: &dyn Env) -> Result<(), CliError> {
    let mode = crate::boot::resolve_mode(args.all, args.user_id.clone(), env);
    let delivery = match (args.exec, args.format) {
        (true, _) => Delivery::Exec(args.command.clone()),
        (false, Some(f)) => Delivery::Print(f),
        (false, None) if mode == Mode::All => Delivery::Print(Format::Json),
        (false, None) => Delivery::Print(Format::Env),
    };
    if mode == Mode::All && matches!(delivery, Delivery::Print(Format::Env)) {
        return Err(CliError::new(
            2,
            "--format env holds one tenant; with --all (or MULTI_TENANT=true) use --format json or --exec",
        ));
    }
    match mode {
        // Legacy mode touches neither the database nor the API.
        Mode::Legacy => deliver_one(&legacy::from_env(env)?, delivery),
        Mode::User(user_id) => {
            let tenant = match source(&args, env)? {
                Source::Api(api) => api.load_user(&user_id)?,
                Source::Database => runtime()?.block_on(async {
                    let mut s = store::open(env).await?;
                    let ctx = AuditContext::cli();
                    Ok::<_, CliError>(
                        database::load_user(&mut s.conn, &s.vault, &ctx, &user_id).await?,
                    )
                })?,
            };
            deliver_one(&tenant, delivery)
        }
        Mode::All => {
            let source = source(&args, env)?;
            match delivery {
                Delivery::Exec(argv) => {
                    let mut file = SessionsFile::create()?;
                    let count = load_all(&source, env, file.writer())?;
                    Err(file.exec(&argv, count).into())
                }
                Delivery::Print(_) => {
                    let stdout = std::io::stdout();
                    load_all(&source, env, &mut stdout.lock())?;
                    Ok(())
                }
            }
        }
    }
}

fn deliver_one(tenant: &TenantConfig, delivery: Delivery) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let written = match delivery {
        Delivery::Exec(argv) => return Err(exec::exec_one(&argv, tenant).into()),
        Delivery::Print(Format::Env) => output::write_env(&mut stdout.lock(), tenant),
        Delivery::Print(Format::Json) => {
            let mut array = JsonArray::new(stdout.lock());
            array.push(tenant).and_then(|()| array.finish().map(drop))
        }
    };
    written.map_err(|e| CliError::failure(format!("cannot write the output: {e}")))
}

/// Streams every active session into a JSON array on `out`; fails with
/// `NoActiveSessions` when there is none. Returns how many were written.
fn load_all(source: &Source, env: &dyn Env, out: &mut dyn Write) -> Result<usize, CliError> {
    let mut array = JsonArray::new(out);
    let mut sink = |t: TenantConfig| {
        array
            .push(&t)
            .map_err(|e| BootError::Failure(format!("cannot write the output: {e}")))
    };
    match source {
        Source::Api(api) => {
            api.load_all(&mut sink)?;
        }
        Source::Database => {
            runtime()?.block_on(async {
                let mut s = store::open(env).await?;
                let ctx = AuditContext::cli();
                database::load_all(&mut s.conn, &s.vault, &ctx, &mut sink).await?;
                Ok::<_, CliError>(())
            })?;
        }
    }
    if array.count() == 0 {
        return Err(BootError::NoActiveSessions.into());
    }
    let (_, count) = array
        .finish()
        .map_err(|e| CliError::failure(format!("cannot write the output: {e}")))?;
    Ok(count)
}
