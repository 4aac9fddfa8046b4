//! `vibee-sessions session put|get|list|deactivate|reactivate`: the operator's way to
//! manage a client without the API. Secrets come from a file or stdin.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{ArgGroup, Args, Subcommand};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::config::Env;
use crate::db::activity::AuditContext;
use crate::db::sessions::{self, ListQuery, SessionInput, SessionMeta, Upserted};
use crate::domain::{SessionId, UserId, decode_session_data};

use super::dotenv::Vars;
use super::{CliError, store};
use crate::crypto::private_file::Rules;

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create or update the session of a user. Secrets (api_hash, phone,
    /// session_data) are read as KEY=VALUE lines from --secrets-file or stdin.
    Put(PutArgs),
    /// Show one session; its credentials only with --show-secrets (an audited read).
    Get {
        user_id: UserId,
        #[arg(long)]
        json: bool,
        /// Decrypt and print api_hash, phone and session_data (base64).
        #[arg(long)]
        show_secrets: bool,
    },
    /// List sessions (metadata only), every page.
    List {
        /// Include deactivated sessions.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        /// Stop after this many sessions.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Make a deactivated session active again (audited): the one way back.
    Reactivate { session_id: SessionId },
    /// Deactivate a session: it serves no credentials and takes no writes
    /// until reactivated; --purge deletes the row for good.
    Deactivate {
        session_id: SessionId,
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("secrets").required(true).args(["secrets_file", "secrets_stdin"])))]
pub struct PutArgs {
    #[arg(long)]
    user_id: String,
    /// Telegram api_id (a positive integer).
    #[arg(long)]
    api_id: i32,
    /// Kept when omitted; random on create.
    #[arg(long)]
    session_id: Option<String>,
    #[arg(long)]
    username: Option<String>,
    /// Mark the session authorized with Telegram (`--authorized=false` to clear).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    authorized: Option<bool>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    digital_twin: Option<bool>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    auto_reply: Option<bool>,
    /// A JSON array of chat ids and names, e.g. '[-100123, "@channel"]'.
    #[arg(long, value_name = "JSON")]
    target_chats: Option<String>,
    /// A file of KEY=VALUE lines: api_hash (required), phone, session_data (base64).
    #[arg(long, value_name = "PATH")]
    secrets_file: Option<PathBuf>,
    /// Read the KEY=VALUE lines from standard input instead.
    #[arg(long)]
    secrets_stdin: bool,
}

const SECRET_NAMES: [&str; 3] = ["api_hash", "phone", "session_data"];

pub async fn run(command: SessionCommand, env: &dyn Env) -> Result<(), CliError> {
    match command {
        SessionCommand::Put(args) => put(args, env).await,
        SessionCommand::Get {
            user_id,
            json,
            show_secrets,
        } => get(env, &user_id, json, show_secrets).await,
        SessionCommand::List { all, json, limit } => list(env, all, json, limit).await,
        SessionCommand::Deactivate { session_id, purge } => {
            deactivate(env, &session_id, purge).await
        }
        SessionCommand::Reactivate { session_id } => {
            let mut conn = store::connect(env).await?;
            let lookup = not_found(SessionId::FIELD, &session_id);
            let (_, changed) =
                sessions::reactivate(&mut conn, &AuditContext::cli(), session_id.as_str())
                    .await
                    .map_err(lookup)?;
            if changed {
                println!("reactivated session {session_id}");
            } else {
                println!("session {session_id} was already active");
            }
            Ok(())
        }
    }
}

fn data_error(message: impl Into<String>) -> CliError {
    CliError::new(CliError::DATA, message)
}

fn input_from(args: PutArgs) -> Result<SessionInput, CliError> {
    let vars = match &args.secrets_file {
        Some(path) => Vars::from_file(path, "--secrets-file", Rules::Private)?,
        None => Vars::from_stdin()?,
    };
    if let Some(unknown) = vars.names().find(|n| !SECRET_NAMES.contains(n)) {
        return Err(data_error(format!(
            "{}: unknown key {unknown} (expected api_hash, phone, session_data)",
            vars.source()
        )));
    }
    let api_hash = vars
        .get("api_hash")
        .cloned()
        .ok_or_else(|| data_error(format!("{}: api_hash is missing", vars.source())))?;
    let session_data = vars
        .get("session_data")
        .map(|b64| {
            decode_session_data(b64.expose_secret())
                .map_err(|_| data_error("invalid session_data: must be base64"))
        })
        .transpose()?;
    let target_chats = args
        .target_chats
        .as_deref()
        .map(serde_json::from_str::<Value>)
        .transpose()
        .map_err(|e| data_error(format!("invalid target_chats: not JSON ({e})")))?;
    Ok(SessionInput {
        user_id: args.user_id,
        session_id: args.session_id,
        username: args.username,
        api_id: args.api_id,
        api_hash,
        phone: vars.get("phone").cloned(),
        session_data,
        is_authorized: args.authorized,
        digital_twin_enabled: args.digital_twin,
        auto_reply_enabled: args.auto_reply,
        target_chats,
    })
}

async fn put(args: PutArgs, env: &dyn Env) -> Result<(), CliError> {
    // Parse and validate before connecting: bad input never waits on the database.
    let input = input_from(args)?;
    input
        .validate()
        .map_err(|e| data_error(format!("invalid {}: {}", e.field, e.reason)))?;
    let mut store = store::open(env).await?;
    let done = sessions::upsert(&mut store.conn, &store.vault, &AuditContext::cli(), &input)
        .await
        .map_err(session_id_taken)?;
    let (verb, meta) = match &done {
        Upserted::Created(m) => ("created", m),
        Upserted::Updated(m) => ("updated", m),
    };
    println!(
        "{verb} session of user_id {} (session_id {}, version {})",
        meta.user_id, meta.session_id, meta.version
    );
    Ok(())
}

fn session_id_taken(e: crate::db::DbError) -> CliError {
    match e {
        crate::db::DbError::SessionIdTaken => {
            data_error("invalid session_id: already used by another user")
        }
        other => other.into(),
    }
}

fn not_found(what: &str, id: &impl std::fmt::Display) -> impl Fn(crate::db::DbError) -> CliError {
    let message = format!("no session with {what} {id}");
    move |e| match e {
        crate::db::DbError::NotFound => CliError::new(CliError::NOT_FOUND, message.clone()),
        other => other.into(),
    }
}

async fn get(
    env: &dyn Env,
    user_id: &UserId,
    as_json: bool,
    secrets: bool,
) -> Result<(), CliError> {
    let (meta, creds) = if secrets {
        let mut store = store::open(env).await?;
        let s = sessions::get_credentials(
            &mut store.conn,
            &store.vault,
            &AuditContext::cli(),
            user_id.as_str(),
        )
        .await
        .map_err(not_found(UserId::FIELD, user_id))?;
        let c = &s.credentials;
        let creds = json!({
            "api_hash": c.api_hash.expose_secret(),
            "phone": c.phone.as_ref().map(|p| p.expose_secret().to_owned()),
            "session_data": c.session_data.as_ref().map(|d| BASE64.encode(d.expose_secret())),
        });
        (s.meta, Some(creds))
    } else {
        // Metadata needs no master key.
        let mut conn = store::connect(env).await?;
        let meta = sessions::get_meta(&mut conn, user_id.as_str())
            .await
            .map_err(not_found(UserId::FIELD, user_id))?;
        (meta, None)
    };
    let mut doc = serde_json::to_value(&meta).expect("metadata serialises");
    if let (Value::Object(map), Some(Value::Object(c))) = (&mut doc, creds) {
        map.extend(c);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    } else if let Value::Object(map) = doc {
        for (k, v) in map {
            match v {
                Value::String(s) => println!("{k}: {s}"),
                Value::Null => println!("{k}: -"),
                other => println!("{k}: {other}"),
            }
        }
    }
    Ok(())
}

const PAGE: i64 = 500;

async fn list(env: &dyn Env, all: bool, as_json: bool, limit: Option<u64>) -> Result<(), CliError> {
    let mut conn = store::connect(env).await?;
    let mut query = ListQuery {
        limit: PAGE,
        include_inactive: all,
        ..Default::default()
    };
    let mut left = limit.unwrap_or(u64::MAX);
    let mut first = true;
    if as_json {
        print!("[");
    } else {
        println!(
            "{:<24} {:<34} {:>10} {:<6} {:<10} {:<25}",
            "USER_ID", "SESSION_ID", "API_ID", "ACTIVE", "AUTHORIZED", "LAST_SEEN"
        );
    }
    // Printed page by page: ten thousand tenants never sit in memory at once.
    while left > 0 {
        query.limit = PAGE.min(i64::try_from(left).unwrap_or(PAGE));
        let page = sessions::list(&mut conn, &query).await?;
        for s in &page.sessions {
            print_row(s, as_json, first);
            first = false;
        }
        left = left.saturating_sub(page.sessions.len() as u64);
        match page.next_cursor {
            Some(c) => query.after = Some(c),
            None => break,
        }
    }
    if as_json {
        println!("]");
    }
    Ok(())
}

fn print_row(s: &SessionMeta, as_json: bool, first: bool) {
    if as_json {
        let sep = if first { "" } else { "," };
        print!("{sep}\n{}", serde_json::to_string(s).expect("JSON"));
        return;
    }
    let seen = s
        .last_seen_at
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into());
    println!(
        "{:<24} {:<34} {:>10} {:<6} {:<10} {:<25}",
        s.user_id, s.session_id, s.api_id, s.is_active, s.is_authorized, seen
    );
}

async fn deactivate(env: &dyn Env, session_id: &SessionId, purge: bool) -> Result<(), CliError> {
    let mut conn = store::connect(env).await?;
    let ctx = AuditContext::cli();
    let lookup = not_found(SessionId::FIELD, session_id);
    if purge {
        sessions::purge(&mut conn, &ctx, session_id.as_str(), None)
            .await
            .map_err(lookup)?;
        println!("purged session {session_id} (the audit log keeps its history)");
    } else if sessions::deactivate(&mut conn, &ctx, session_id.as_str(), None)
        .await
        .map_err(lookup)?
    {
        println!("deactivated session {session_id}");
    } else {
        println!("session {session_id} was already inactive");
    }
    Ok(())
}
