//! The `vibee-sessions` command line: one binary, one subcommand per job.
//! Secrets enter through the environment, a file or stdin, never argv.

mod boot;
mod dotenv;
mod error;
mod grant;
mod import_env;
mod keys;
mod migrate;
mod rotate;
mod serve;
mod session;
mod stats;
pub mod store;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::CliError;

use crate::config::{self, ProcessEnv};

#[derive(Debug, Parser)]
#[command(
    name = "vibee-sessions",
    version,
    about = "Encrypted store of Telegram session credentials for a multi-tenant agent",
    long_about = "Encrypted store of Telegram session credentials for a multi-tenant agent.\n\n\
        Configuration comes from the environment (and .env when present): DATABASE_URL, \
        DATABASE_DIRECT_URL, DATABASE_PREPARED_STATEMENTS, MASTER_KEY / MASTER_KEY_FILE / MASTER_PASSPHRASE, LISTEN_ADDR, LOG_FORMAT, RUST_LOG."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending database migrations (safe to run from several hosts at once).
    Migrate,
    /// Generate a new random master key (32 bytes, base64).
    Keygen(keys::KeygenArgs),
    /// Inspect and manage data keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Serve the REST API (applies pending migrations first unless --no-migrate).
    Serve(serve::ServeArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Add, show, list and deactivate client sessions.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Session counts, last activity, sessions per data key.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Move a legacy .env client (TELEGRAM_*) into the store.
    ImportEnv(import_env::ImportEnvArgs),
    /// Start the agent with credentials from the store (or print them).
    Boot(boot::BootArgs),
    /// Rotate the data key: a new primary key, every row re-encrypted under it
    /// in small batches while the service serves, old keys retired.
    Rotate(rotate::RotateArgs),
    /// Re-wrap every data key under a new master key, in one transaction.
    RotateMaster(rotate::RotateMasterArgs),
    /// Give an existing role what serve, boot and rotate need (run as the
    /// schema's owner, after `migrate`): no DDL, audit trail append-only.
    Grant(grant::GrantArgs),
}

/// Runs the command line and turns the outcome into the process exit code.
pub fn main() -> ExitCode {
    let dotenv = config::load_dotenv();
    let cli = Cli::parse();
    if let Err(e) = dotenv {
        eprintln!("error: {e}");
        return ExitCode::from(CliError::CONFIG);
    }
    config::init_logging(config::log_format(&ProcessEnv));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.code())
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    // A core dump of a process holding the master key or unwrapped data keys
    // would hold them in clear. `boot` is left alone: it may exec the agent,
    // which would inherit the limit.
    // `boot` still gets PR_SET_DUMPABLE 0, which execve resets for the agent.
    if matches!(cli.command, Command::Boot(_)) {
        crate::hardening::disable_dumpable()
            .map_err(|e| CliError::failure(format!("cannot make the process non-dumpable: {e}")))?;
    } else {
        crate::hardening::disable_core_dumps()
            .map_err(|e| CliError::failure(format!("cannot disable core dumps: {e}")))?;
    }
    match cli.command {
        // Key generation needs no runtime and no database.
        Command::Keygen(args) => keys::keygen(&args),
        // Boot may need no runtime (legacy mode, API source) and may exec.
        Command::Boot(args) => boot::run(args, &ProcessEnv),
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(async move {
                match command {
                    Command::Migrate => migrate::run(&ProcessEnv).await,
                    Command::Keys(k) => keys::run(k, &ProcessEnv).await,
                    Command::Serve(args) => serve::run(&args, &ProcessEnv).await,
                    Command::Token(t) => token::run(t, &ProcessEnv).await,
                    Command::Session(c) => session::run(c, &ProcessEnv).await,
                    Command::Stats { json } => stats::run(&ProcessEnv, json).await,
                    Command::ImportEnv(a) => import_env::run(a, &ProcessEnv).await,
                    Command::Rotate(a) => rotate::rotate(&a, &ProcessEnv).await,
                    Command::RotateMaster(a) => rotate::rotate_master_cmd(&a, &ProcessEnv).await,
                    Command::Grant(a) => grant::run(&a, &ProcessEnv).await,
                    Command::Keygen(_) | Command::Boot(_) => unreachable!("handled above"),
                }
            })
        }
    }
}
