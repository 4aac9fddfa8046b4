use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::{self, Env};
use crate::crypto::{KekId, MasterKey};
use crate::db::activity::AuditContext;
use crate::db::keys::KeyState;
use crate::db::{MasterKeySource, keys};

use super::CliError;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the key to this file (mode 0600) instead of printing it.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Replace an existing key file. Data sealed under the old key becomes
    /// unreadable unless that key is kept elsewhere.
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Data keys: ids, states, master key fingerprint, rows and encryptions per key.
    /// Never key material.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a retired data key for good (refused while any row uses it). Audited.
    Destroy {
        /// The key's id, as `keys status` shows it.
        id: i32,
    },
}

pub fn keygen(args: &KeygenArgs) -> Result<(), CliError> {
    let (key, encoded) = MasterKey::generate();
    let Some(path) = &args.out else {
        println!("{}", encoded.expose_secret());
        return Ok(());
    };
    write_private_file(path, encoded.expose_secret().as_bytes(), args.force)?;
    eprintln!(
        "wrote a new master key to {} (mode 0600, fingerprint {}).\n\
         Back it up somewhere safe: without it, nothing sealed under it can be decrypted.",
        path.display(),
        key.kek_id()
    );
    Ok(())
}

/// Writes a secret file readable by its owner only; refuses to replace one
/// unless `force`.
pub(crate) fn write_private_file(
    path: &Path,
    contents: &[u8],
    force: bool,
) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::failure(format!(
                "{} already exists; refusing to overwrite it (pass --force to replace it)",
                path.display()
            ))
        } else {
            CliError::failure(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    // An existing file keeps its mode when truncated: tighten it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))
}

pub async fn run(command: KeysCommand, env: &dyn Env) -> Result<(), CliError> {
    match command {
        KeysCommand::Status { json } => status(env, json).await,
        KeysCommand::Destroy { id } => destroy(env, id).await,
    }
}

async fn destroy(env: &dyn Env, id: i32) -> Result<(), CliError> {
    let target = super::store::target(env)?;
    let mut conn = target.connect().await?;
    keys::destroy_key(&mut conn, &AuditContext::cli(), id)
        .await
        .map_err(|e| match e {
            keys::KeyAdminError::Db(e) => e.into(),
            other => CliError::failure(other.to_string()),
        })?;
    println!("data key {id} destroyed");
    Ok(())
}

/// The configured master key's fingerprint, when it can be known without
/// deriving a passphrase (status must stay cheap).
fn configured_kek_id(env: &dyn Env) -> Result<Option<KekId>, CliError> {
    match config::master_key_source(env) {
        Ok(MasterKeySource::Key(key)) => Ok(Some(key.kek_id().clone())),
        Ok(MasterKeySource::Passphrase(_)) | Err(config::ConfigError::NoMasterKey) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn status(env: &dyn Env, as_json: bool) -> Result<(), CliError> {
    let target = super::store::target(env)?;
    let ours = configured_kek_id(env)?;
    let mut conn = target.connect().await?;
    let keys = keys::key_status(&mut conn).await?;
    let live = keys.iter().filter(|k| k.state != KeyState::Retired);
    let matches = ours
        .as_ref()
        .map(|ours| live.clone().all(|k| k.kek_id == ours.as_str()));
    if as_json {
        let doc = json!({
            "master_key": {
                "kek_id": ours.as_ref().map(KekId::as_str),
                "matches": matches,
            },
            "keys": keys,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON of plain values")
        );
    } else {
        match (&ours, matches) {
            (Some(id), Some(true)) => println!("master key {id}: matches the stored data keys"),
            (Some(id), _) => println!("master key {id}: DOES NOT MATCH the stored data keys"),
            (None, _) => println!("master key: not checked (none configured, or a passphrase)"),
        }
        println!(
            "{:>6}  {:<8}  {:<32}  {:>8}  {:>12}  CREATED",
            "ID", "STATE", "KEK ID", "ROWS", "ENCRYPTIONS"
        );
        for k in &keys {
            println!(
                "{:>6}  {:<8}  {:<32}  {:>8}  {:>12}  {}",
                k.id,
                k.state,
                k.kek_id,
                k.rows,
                k.encryptions,
                k.created_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        if keys.is_empty() {
            println!("(no data keys yet: the first start of the service creates one)");
        }
        for w in keys.iter().filter_map(|k| k.warning.as_deref()) {
            println!("warning: {w}");
        }
    }
    if matches == Some(false) {
        return Err(CliError::new(
            CliError::CONFIG,
            "the master key does not match the one that wrapped the data keys",
        ));
    }
    Ok(())
}
