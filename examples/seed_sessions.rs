//! Seeds N sessions, every field sealed as the service seals it (same key
//! ring, same field format, same associated data), for the benchmarks
//! (`scripts/bench.sh`, `scripts/rotation-bench.sh`).
//!
//!   DATABASE_URL=... MASTER_KEY=... cargo run --example seed_sessions -- 100000 [START]
//!
//! User ids are `bench0000000` + i for i in START..START+N. Rows go in with
//! multi-row INSERTs of 1,000 (sealing is done here, in parallel tasks), so a
//! hundred thousand rows take seconds, not minutes. `SEED_BLOB_BYTES` sets the
//! size of the MTProto session blob (default 350, a realistic size).

use std::sync::Arc;
use std::time::Instant;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use vibee_sessions::config::{self, ProcessEnv};
use vibee_sessions::crypto::{FieldRef, MasterKeys};
use vibee_sessions::db::schema::user_sessions;
use vibee_sessions::db::{DatabaseTarget, PoolSettings, Vault, build_pool, keys};

const TASKS: usize = 4;
const CHUNK: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let start: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let blob_len: usize = std::env::var("SEED_BLOB_BYTES")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(350);
    let target = DatabaseTarget::parse(&config::database_url(&ProcessEnv)?)?;
    let mut conn = target.connect().await?;
    let current = keys::unlock(&mut conn, config::master_key_source(&ProcessEnv)?).await?;
    let vault = Arc::new(Vault::open(&mut conn, MasterKeys::new(current, None)).await?);
    let pool = build_pool(&target, &PoolSettings::default());
    let started = Instant::now();
    let chunks: Vec<(usize, usize)> = (start..start + n)
        .step_by(CHUNK)
        .map(|lo| (lo, (lo + CHUNK).min(start + n)))
        .collect();
    let chunks = Arc::new(std::sync::Mutex::new(chunks));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, vault, chunks) = (pool.clone(), Arc::clone(&vault), Arc::clone(&chunks));
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await?;
            loop {
                let Some((lo, hi)) = chunks.lock().unwrap().pop() else {
                    break;
                };
                let ring = vault.reserve(&mut conn, 3 * (hi - lo) as u64).await?;
                let key_id = ring.primary_id().0 as i32;
                let mut rows = Vec::with_capacity(hi - lo);
                for i in lo..hi {
                    let id = uuid::Uuid::new_v4();
                    let (user_id, session_id) = (format!("bench{i:07}"), format!("sid{i:07}"));
                    // Bound to the row and its lookup keys (format v2), as the store seals.
                    let seal = |column, bytes: &[u8]| {
                        ring.seal(
                            &FieldRef::new("user_sessions", column, id.as_bytes())
                                .looked_up_by(user_id.as_bytes(), session_id.as_bytes()),
                            bytes,
                        )
                    };
                    let blob: Vec<u8> = (0..blob_len).map(|j| (i * 31 + j * 7) as u8).collect();
                    rows.push((
                        user_sessions::id.eq(id),
                        user_sessions::user_id.eq(user_id.clone()),
                        user_sessions::session_id.eq(session_id.clone()),
                        user_sessions::api_id.eq(1000 + i as i32),
                        user_sessions::api_hash_encrypted.eq(seal(
                            "api_hash_encrypted",
                            format!("{:032x}", i * 7919).as_bytes(),
                        )),
                        user_sessions::phone_encrypted.eq(Some(seal(
                            "phone_encrypted",
                            format!("+1555{i:07}").as_bytes(),
                        ))),
                        user_sessions::session_data_encrypted
                            .eq(Some(seal("session_data_encrypted", &blob))),
                        user_sessions::data_key_id.eq(key_id),
                        user_sessions::is_authorized.eq(true),
                    ));
                }
                diesel::insert_into(user_sessions::table)
                    .values(&rows)
                    .execute(&mut conn)
                    .await?;
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
