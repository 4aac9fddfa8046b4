//! `vibee-sessions grant ROLE`: what a non-owner role needs to run `serve`,
//! `boot` and `rotate`, applied by the schema's owner (docs/DEPLOYMENT.md).

use clap::Args;

use crate::config::Env;
use crate::db::PoolSettings;
use crate::db::grants::{self, RoleName, RoleTimeouts};

use super::CliError;

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The role to grant to; it must exist (CREATE ROLE ... LOGIN PASSWORD
    /// is the operator's, so the password never passes through here).
    role: String,
    /// Print the SQL instead of running it.
    #[arg(long)]
    print: bool,
}

pub async fn run(args: &GrantArgs, env: &dyn Env) -> Result<(), CliError> {
    let role = RoleName::parse(&args.role).map_err(|m| CliError::new(CliError::CONFIG, m))?;
    let target = super::store::direct_target(env)?;
    let defaults = PoolSettings::default();
    let timeouts = RoleTimeouts {
        statement_timeout_ms: defaults.statement_timeout.as_millis(),
        lock_timeout_ms: defaults.lock_timeout.as_millis(),
    };
    let statements = grants::grant_sql(&role, target.dbname(), &timeouts);
    if args.print {
        for s in &statements {
            println!("{s};");
        }
        return Ok(());
    }
    let mut conn = target.connect().await?;
    let unlisted = grants::unlisted_tables(&mut conn).await?;
    if !unlisted.is_empty() {
        return Err(CliError::failure(format!(
            "the database has tables this binary does not know ({}): it is older than the \
             schema; run the grant of the version that migrated it",
            unlisted.join(", ")
        )));
    }
    grants::apply(&mut conn, &statements).await?;
    println!(
        "granted {} what serve, boot and rotate need on database {}",
        args.role,
        target.dbname()
    );
    Ok(())
}
