use crate::config::{self, Env};
use crate::db::{DatabaseTarget, migrate};

use super::CliError;

pub async fn run(env: &dyn Env) -> Result<(), CliError> {
    let target = DatabaseTarget::parse(&config::database_url(env)?)?;
    let applied = migrate::run_pending(&target).await?;
    if applied.is_empty() {
        println!("the schema is up to date");
    } else {
        for version in &applied {
            println!("applied {version}");
        }
    }
    Ok(())
}
