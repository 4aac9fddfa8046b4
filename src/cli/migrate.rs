use crate::config::Env;
use crate::db::migrate;

use super::CliError;

pub async fn run(env: &dyn Env) -> Result<(), CliError> {
    let target = super::store::direct_session(env).await?;
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
