//! Seeds N sessions through the real store (every field sealed as the service
//! seals it), for the rotation benchmark (`scripts/rotation-bench.sh`).
//!
//!   DATABASE_URL=... MASTER_KEY=... cargo run --example seed_sessions -- 100000

use std::sync::Arc;
use std::time::Instant;

use secrecy::{SecretSlice, SecretString};
use vibee_sessions::config::{self, ProcessEnv};
use vibee_sessions::crypto::MasterKeys;
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::sessions::{self, SessionInput};
use vibee_sessions::db::{DatabaseTarget, PoolSettings, Vault, build_pool, keys};

const TASKS: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let target = DatabaseTarget::parse(&config::database_url(&ProcessEnv)?)?;
    let mut conn = target.connect().await?;
    let current = keys::unlock(&mut conn, config::master_key_source(&ProcessEnv)?).await?;
    let vault = Arc::new(Vault::open(&mut conn, MasterKeys::new(current, None)).await?);
    let pool = build_pool(&target, &PoolSettings::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (pool, vault) = (pool.clone(), Arc::clone(&vault));
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await?;
            let ctx = AuditContext::cli();
            // A realistic MTProto session blob is a few hundred bytes.
            let blob = vec![0x5a; 512];
            for i in (t..n).step_by(TASKS) {
                let input = SessionInput {
                    user_id: format!("bench{i:07}"),
                    api_id: 1000 + i as i32,
                    api_hash: SecretString::from("0123456789abcdef0123456789abcdef"),
                    phone: Some(SecretString::from(format!("+1555{i:07}"))),
                    session_data: Some(SecretSlice::from(blob.clone())),
                    ..Default::default()
                };
                sessions::upsert(&mut conn, &vault, &ctx, &input).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!(
        "seeded {n} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
