//! `rotate` (data keys) and `rotate-master` (the key that wraps them).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};
use diesel_async::AsyncPgConnection;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{self, Env};
use crate::crypto::MasterKey;
use crate::db::Vault;
use crate::db::activity::AuditContext;
use crate::db::keys::{self, KeyAdminError};
use crate::kek::{Kek, Keks};
use crate::rotation::master::{NewMaster, rotate_master};
use crate::rotation::{self, Outcome, RotateOptions, RotationError, format_duration};
use crate::transit::TransitSettings;

use super::CliError;

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Rows re-encrypted per transaction (each batch locks only its own rows).
    #[arg(long, default_value_t = rotation::DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Pause between batches, in milliseconds, to go easy on a busy database.
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Only finish an unfinished rotation (after a crash or kill); never start one.
    #[arg(long)]
    resume: bool,
    /// Rotate only if the primary data key is older than this (e.g. 90d; units
    /// s, m, h, d). For cron: otherwise says so and exits 0.
    #[arg(long, value_name = "DURATION", value_parser = rotation::parse_duration)]
    if_older_than: Option<Duration>,
    /// How long after the new key became primary old keys may be retired, in
    /// milliseconds. Must exceed the replicas' key refresh interval (10 s) plus
    /// the longest write transaction; lower it only where no replica runs.
    #[arg(long, default_value_t = rotation::DEFAULT_GRACE.as_millis() as u64)]
    grace_ms: u64,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("new").required(true).args(["new_key_file", "new_key_env", "new_passphrase_env", "new_transit_key", "rewrap"])))]
#[command(
    after_help = "The current master key comes from the usual configuration \
    (MASTER_KEY, MASTER_KEY_FILE, MASTER_PASSPHRASE or MASTER_KEY_TRANSIT_KEY, plus \
    MASTER_KEY_PREVIOUS*). A transit key is reached with VAULT_ADDR (or BAO_ADDR), \
    VAULT_CACERT, VAULT_NAMESPACE, VAULT_TOKEN / VAULT_TOKEN_FILE or VAULT_ROLE_ID + \
    VAULT_SECRET_ID_FILE, and MASTER_KEY_TRANSIT_MOUNT (default transit). See \
    docs/KEY_ROTATION.md and docs/TRANSIT.md."
)]
pub struct RotateMasterArgs {
    /// File holding the new master key (base64, mode 0600; `vibee-sessions keygen --out`).
    #[arg(long, value_name = "PATH")]
    new_key_file: Option<PathBuf>,
    /// Name of the environment variable holding the new master key (base64).
    /// The name, not the key: secrets never go on the command line.
    #[arg(long, value_name = "VAR")]
    new_key_env: Option<String>,
    /// Name of the environment variable holding the new passphrase; fresh
    /// Argon2id parameters and salt are stored with the re-wrapped keys.
    #[arg(long, value_name = "VAR")]
    new_passphrase_env: Option<String>,
    /// Move the wraps to this key of the transit engine (OpenBao/Vault) that
    /// VAULT_ADDR names, under MASTER_KEY_TRANSIT_MOUNT (default transit).
    #[arg(long, value_name = "NAME")]
    new_transit_key: Option<String>,
    /// Re-wrap every data key under the current master key: after the transit
    /// key was rotated (`bao write -f transit/keys/K/rotate`), every wrap moves
    /// to its newest version, and min_decryption_version can then be raised.
    #[arg(long)]
    rewrap: bool,
}

/// The master keys as configured: the current one (`MASTER_KEY*` or the
/// passphrase) and `MASTER_KEY_PREVIOUS*`.
async fn master_keys(env: &dyn Env, conn: &mut AsyncPgConnection) -> Result<Keks, CliError> {
    let source = config::master_key_source(env)?;
    let previous = config::previous_master_key(env)?;
    let current = keys::unlock_kek(conn, source).await?;
    Ok(Keks::new(current, previous.map(Kek::Local)))
}

fn admin_error(e: KeyAdminError) -> CliError {
    match e {
        KeyAdminError::Db(e) => e.into(),
        other => CliError::failure(other.to_string()),
    }
}

fn rotation_error(e: RotationError) -> CliError {
    match e {
        RotationError::Db(e) => e.into(),
        RotationError::Key(e) => admin_error(e),
        other => CliError::failure(other.to_string()),
    }
}

pub async fn rotate(args: &RotateArgs, env: &dyn Env) -> Result<(), CliError> {
    // The rotation holds a session advisory lock on this connection for its
    // whole run: it must be a real session, never a transaction pooler's.
    let target = super::store::direct_session(env).await?;
    let mut conn = target.connect().await?;
    let master = master_keys(env, &mut conn).await?;
    let vault = Vault::open(&mut conn, master).await?;
    let opts = RotateOptions {
        batch_size: args.batch_size,
        pause: Duration::from_millis(args.pause_ms),
        resume: args.resume,
        if_older_than: args.if_older_than,
        grace: Duration::from_millis(args.grace_ms),
    };
    let progress = rotation::progress::for_stderr();
    let outcome = rotation::rotate(&mut conn, &vault, &opts, progress.as_ref())
        .await
        .map_err(rotation_error)?;
    match outcome {
        Outcome::NotDue {
            primary,
            age,
            min_age,
        } => println!(
            "primary data key {primary} is {} old, younger than {}: not rotating",
            format_duration(Duration::from_secs(age.as_secs())),
            format_duration(min_age)
        ),
        Outcome::NothingToDo { primary } => {
            println!("nothing to do: data key {primary} is primary and no old key holds rows")
        }
        Outcome::Finished(r) => {
            let rate = r.rows_per_sec();
            tracing::info!(
                rows = r.rows,
                seconds = r.elapsed.as_secs_f64(),
                rows_per_sec = rate.round() as u64,
                primary = r.primary.0,
                retired = ?r.retired,
                "rotation finished"
            );
            let retired = if r.retired.is_empty() {
                "none".to_owned()
            } else {
                format!("{:?}", r.retired)
            };
            println!(
                "rotation finished: {} rows re-encrypted in {:.1} s ({:.0} rows/s); \
                 primary data key {}; keys retired: {retired}",
                r.rows,
                r.elapsed.as_secs_f64(),
                rate,
                r.primary
            );
        }
    }
    Ok(())
}

fn new_master(args: &RotateMasterArgs, env: &dyn Env) -> Result<NewMaster, CliError> {
    if args.rewrap {
        return Ok(NewMaster::Current);
    }
    if let Some(name) = &args.new_transit_key {
        let settings = TransitSettings::from_env(env, name, "--new-transit-key")
            .map_err(|e| CliError::new(CliError::CONFIG, e.to_string()))?;
        return Ok(NewMaster::Transit(settings));
    }
    if let Some(path) = &args.new_key_file {
        return Ok(NewMaster::Key(MasterKey::from_file(path)?));
    }
    if let Some(var) = &args.new_key_env {
        let value = env.get(var).ok_or_else(|| {
            CliError::new(
                CliError::CONFIG,
                format!("--new-key-env: the environment variable {var} is not set"),
            )
        })?;
        let value = SecretString::from(value);
        return Ok(NewMaster::Key(MasterKey::from_base64(
            value.expose_secret(),
            var,
        )?));
    }
    let var = args
        .new_passphrase_env
        .as_ref()
        .expect("clap requires one of the three");
    let value = env.get(var).ok_or_else(|| {
        CliError::new(
            CliError::CONFIG,
            format!("--new-passphrase-env: the environment variable {var} is not set"),
        )
    })?;
    Ok(NewMaster::Passphrase(SecretString::from(value)))
}

pub async fn rotate_master_cmd(args: &RotateMasterArgs, env: &dyn Env) -> Result<(), CliError> {
    let target = super::store::target(env)?;
    let new = new_master(args, env)?;
    let mut conn = target.connect().await?;
    let master = master_keys(env, &mut conn).await?;
    let rewrap = matches!(new, NewMaster::Current);
    let to_transit = matches!(new, NewMaster::Transit(_));
    let report = rotate_master(&mut conn, &master, new, &AuditContext::cli())
        .await
        .map_err(admin_error)?;
    let versions = if report.versions.is_empty() {
        String::new()
    } else {
        format!(
            " (transit key version{} {})",
            if report.versions.len() > 1 { "s" } else { "" },
            report
                .versions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if rewrap {
        println!(
            "re-wrapped all {} data keys under master key {}{versions} (no session row changed)",
            report.rewrapped, report.new_kek_id
        );
        return Ok(());
    }
    if report.rewrapped == 0 {
        println!(
            "every data key ({}) is already wrapped under master key {}; nothing to do",
            report.total, report.new_kek_id
        );
        return Ok(());
    }
    let next = if to_transit {
        "configure every replica with MASTER_KEY_TRANSIT_KEY (and VAULT_ADDR and its \
         credentials) instead of the local key, restart them one by one, then destroy the old \
         key. See docs/TRANSIT.md."
    } else {
        "configure every replica with the new key as MASTER_KEY (or MASTER_KEY_FILE) and \
         the old one as MASTER_KEY_PREVIOUS (or MASTER_KEY_PREVIOUS_FILE), restart them one by \
         one, then drop MASTER_KEY_PREVIOUS. See docs/KEY_ROTATION.md."
    };
    println!(
        "re-wrapped {} of {} data keys under master key {}{versions} (no session row changed).\n\
         Next: {next}",
        report.rewrapped, report.total, report.new_kek_id
    );
    Ok(())
}
