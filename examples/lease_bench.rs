//! Lease throughput for `scripts/bench.sh` (scripts/bench/leases.sh): takes,
//! single renewals, one batched renewal of every lease, releases, then
//! batched takes and releases, each over the store's own statements on one
//! connection, side by side in one run.
//!
//!   DATABASE_URL=... cargo run --release --example lease_bench -- [N]
//!
//! Uses the first N active sessions (default 10,000). Prints `name value`
//! lines: `take_per_s`, `renew_per_s`, `release_per_s`, `single_renew_s`
//! (N renewals one by one), `batch_renew_s` (the median of 5 batched
//! renewals of all N in one statement), `take_batch_per_s` and
//! `release_batch_per_s` (all N in batches of `batch`, a boot loader's
//! chunk), `batch` and `leases`.

use std::time::Instant;

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use vibee_sessions::boot::supervise::TAKE_CHUNK;
use vibee_sessions::config::{self, ProcessEnv};
use vibee_sessions::db::DatabaseTarget;
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::leases::{self, Release, Take};

#[derive(QueryableByName)]
struct Sid {
    #[diesel(sql_type = Text)]
    session_id: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: i64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let target = DatabaseTarget::parse(&config::database_url(&ProcessEnv)?)?;
    let mut conn = target.connect().await?;
    let ids: Vec<String> = diesel::sql_query(
        "SELECT session_id FROM user_sessions WHERE is_active ORDER BY user_id LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(n)
    .load::<Sid>(&mut conn)
    .await?
    .into_iter()
    .map(|s| s.session_id)
    .collect();
    anyhow::ensure!(!ids.is_empty(), "no active sessions to lease");
    let ctx = AuditContext::cli();
    let holder = "lease-bench";
    let per_s = |count: usize, secs: f64| count as f64 / secs;

    let t = Instant::now();
    let mut fences = Vec::with_capacity(ids.len());
    for id in &ids {
        match leases::take(&mut conn, &ctx, id, holder, 300).await? {
            Take::Granted { lease, .. } => fences.push((id.clone(), lease.fence)),
            other => anyhow::bail!("{id}: not granted: {other:?}"),
        }
    }
    let take_s = t.elapsed().as_secs_f64();

    // A single renewal is what a holder without batching does: the same
    // take again, one statement per lease.
    let t = Instant::now();
    for id in &ids {
        leases::take(&mut conn, &ctx, id, holder, 300).await?;
    }
    let single_s = t.elapsed().as_secs_f64();

    let mut batch = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let renewed = leases::renew_batch(&mut conn, holder, 300, &fences).await?;
        batch.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            renewed.len() == fences.len(),
            "a batched renewal lost leases"
        );
    }
    batch.sort_by(f64::total_cmp);

    let t = Instant::now();
    for (id, fence) in &fences {
        if !matches!(
            leases::release(&mut conn, &ctx, id, holder, *fence).await?,
            Release::Released
        ) {
            anyhow::bail!("{id}: not released");
        }
    }
    let release_s = t.elapsed().as_secs_f64();

    // What a boot loader does: its share in chunks, one statement each.
    let chunk = TAKE_CHUNK;
    let t = Instant::now();
    let mut fences = Vec::with_capacity(ids.len());
    for batch in ids.chunks(chunk) {
        let granted = leases::take_batch(&mut conn, &ctx, holder, 300, batch).await?;
        anyhow::ensure!(granted.len() == batch.len(), "a batched take missed leases");
        fences.extend(granted.into_iter().map(|l| (l.session_id, l.fence)));
    }
    let take_batch_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    for batch in fences.chunks(chunk) {
        let released = leases::release_batch(&mut conn, &ctx, holder, batch).await?;
        anyhow::ensure!(
            released.len() == batch.len(),
            "a batched release missed leases"
        );
    }
    let release_batch_s = t.elapsed().as_secs_f64();

    println!("leases {}", ids.len());
    println!("batch {chunk}");
    println!("take_per_s {:.0}", per_s(ids.len(), take_s));
    println!("renew_per_s {:.0}", per_s(ids.len(), single_s));
    println!("release_per_s {:.0}", per_s(ids.len(), release_s));
    println!("single_renew_s {single_s:.4}");
    println!("batch_renew_s {:.4}", batch[2]);
    println!("take_batch_per_s {:.0}", per_s(ids.len(), take_batch_s));
    println!(
        "release_batch_per_s {:.0}",
        per_s(ids.len(), release_batch_s)
    );
    Ok(())
}
