//! `vibee-sessions token create|list|revoke`.

use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::config::Env;
use crate::db::activity::AuditContext;
use crate::db::tokens::{self, Scope};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it, alone on stdout, this once (only its hash is stored).
    Create {
        /// A name for the token; it appears in the audit log.
        #[arg(long)]
        name: String,
        /// sessions:read (credentials), sessions:write, sessions:list, admin (everything).
        /// Any of `--scope a,b`, `--scope a b` and `--scope a --scope b`.
        #[arg(long = "scope", required = true, num_args = 1.., value_delimiter = ',')]
        scopes: Vec<Scope>,
    },
    /// List tokens: names, scopes, use. Never the secrets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it stops working at once.
    Revoke { name: String },
}

pub async fn run(command: TokenCommand, env: &dyn Env) -> Result<(), CliError> {
    let target = super::store::target(env)?;
    let mut conn = target.connect().await?;
    match command {
        TokenCommand::Create { name, scopes } => {
            let token = tokens::create(&mut conn, &AuditContext::cli(), &name, &scopes).await?;
            println!("{}", token.expose_secret());
            eprintln!(
                "created token {name:?} with scopes {}; it is shown this once",
                joined(&scopes)
            );
        }
        TokenCommand::List { json } => {
            let list = tokens::list(&mut conn).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).expect("JSON of plain values")
                );
            } else {
                println!(
                    "{:<24}  {:<40}  {:<20}  STATE",
                    "NAME", "SCOPES", "LAST USED"
                );
                for t in list {
                    let last = t
                        .last_used_at
                        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_else(|| "never".into());
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24}  {:<40}  {:<20}  {state}",
                        t.name,
                        joined(&t.scopes),
                        last
                    );
                }
            }
        }
        TokenCommand::Revoke { name } => {
            if tokens::revoke(&mut conn, &AuditContext::cli(), &name).await? {
                eprintln!("revoked token {name:?}");
            } else {
                eprintln!("token {name:?} was already revoked");
            }
        }
    }
    Ok(())
}

fn joined(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
