//! `vibee-sessions boot`: argument handling and wiring for `crate::boot`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use crate::boot::api::ApiSource;
use crate::boot::exec::{self, SessionsFile};
use crate::boot::leaser::Leaser;
use crate::boot::output::{self, JsonArray};
use crate::boot::supervise::{Settings, Supervisor};
use crate::boot::{BootError, Mode, TenantConfig, database, legacy};
use crate::config::Env;
use crate::crypto::private_file::{self, Rules};
use crate::db::activity::AuditContext;
use crate::db::{PoolSettings, build_pool};

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
    With --exec (one tenant or --all) the loader supervises the agent: it holds the \
    tenants' leases as --holder, renews them every third of --lease-ttl, forwards \
    SIGTERM/SIGINT/SIGHUP, and exits with the agent's status; the agent is killed \
    if the loader dies. --all with N loaders splits the active sessions between them. \
    --format without --exec prints and exits and takes no lease.\n\
    Exit codes: 10 unknown user, 11 session deactivated, 12 no active sessions, \
    13 the tenant's lease is held by another holder (named, with its expiry)."
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
    /// What to print: env (one tenant; the default for one) or json (the
    /// default for --all). Prints and exits: takes no lease.
    #[arg(long, value_enum, conflicts_with = "exec")]
    format: Option<Format>,
    /// Run the agent given after `--` and supervise it: one tenant's
    /// credentials in its environment, or many as JSON in the memory file
    /// whose descriptor number is in VIBEE_SESSIONS_FD; their leases held
    /// while it runs. (Legacy mode replaces this process with the agent.)
    #[arg(long, requires = "command")]
    exec: bool,
    /// The lease holder's name (default: <hostname>-<pid>).
    #[arg(long, env = "VIBEE_HOLDER", value_name = "NAME")]
    holder: Option<String>,
    /// Lease time to live (5s-3600s); renewed every third of it.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// How long the agent has to stop after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    stop_grace: Duration,
    /// With --user-id: wait for a held lease instead of exiting with 13.
    #[arg(long, requires = "exec")]
    wait: bool,
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
            BootError::LeaseHeld { .. } | BootError::LeaseLost(_) => Self::LEASE_HELD,
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
    if let (Mode::User(_) | Mode::All, Delivery::Exec(argv)) = (&mode, &delivery) {
        let code = supervise(&args, env, &mode, argv.clone())?;
        std::process::exit(code);
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
                // The recorder's connection opens while the keys unlock.
                let (s, recorder) = tokio::join!(store::open(env), store::connect(env));
                let (mut s, mut recorder) = (s?, recorder?);
                let ctx = AuditContext::cli();
                database::load_all(&mut s.conn, &mut recorder, &s.vault, &ctx, &mut sink).await?;
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

/// `30s`, `2m`, `1h`, `500ms`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 2m, 500ms)"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    })
}

/// `<hostname>-<pid>`, with characters outside the identifier rules as `-`.
fn default_holder() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let host: String = if ok {
        String::from_utf8_lossy(&buf[..end])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-.:@".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(100)
            .collect()
    } else {
        String::new()
    };
    let host = host.trim_start_matches('.');
    let host = if host.is_empty() { "host" } else { host };
    format!("{host}-{}", std::process::id())
}

/// Runs the supervisor; returns the exit code to leave with.
fn supervise(
    args: &BootArgs,
    env: &dyn Env,
    mode: &Mode,
    argv: Vec<OsString>,
) -> Result<i32, CliError> {
    let holder = args.holder.clone().unwrap_or_else(default_holder);
    crate::db::leases::validate_holder(&holder)
        .map_err(|e| CliError::new(2, format!("--holder (or VIBEE_HOLDER): {e}")))?;
    let ttl_ok = (crate::db::leases::MIN_TTL_SECONDS as u64
        ..=crate::db::leases::MAX_TTL_SECONDS as u64)
        .contains(&args.lease_ttl.as_secs());
    if !ttl_ok || args.lease_ttl.subsec_nanos() != 0 {
        return Err(CliError::new(
            2,
            "--lease-ttl must be whole seconds between 5s and 3600s",
        ));
    }
    let settings = Settings {
        holder,
        ttl: args.lease_ttl,
        stop_grace: args.stop_grace,
        wait: args.wait,
    };
    let source = source(args, env)?;
    // A current-thread runtime on the main thread: the agent is spawned from
    // this thread, which PR_SET_PDEATHSIG ties its life to.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let leaser = match source {
            Source::Api(api) => Leaser::Api(Arc::new(api)),
            Source::Database => {
                let s = store::open(env).await?;
                let target = store::target(env)?;
                let pool = build_pool(
                    &target,
                    &PoolSettings {
                        max_size: 2,
                        ..PoolSettings::default()
                    },
                );
                Leaser::Db {
                    pool,
                    vault: Arc::new(s.vault),
                }
            }
        };
        let supervisor = Supervisor::new(leaser, settings, argv)?;
        let code = match mode {
            Mode::User(user_id) => supervisor.run_one(user_id).await?,
            _ => supervisor.run_all().await?,
        };
        Ok::<_, CliError>(code)
    })
}
