//! The cost fencing adds to a blob write, for `scripts/bench.sh`
//! (scripts/bench/fence.sh): `PUT …/data`'s store write on one connection,
//! fenced (a live lease, its fence sent) and unfenced (no lease, no fence),
//! one of each in turn, so both see the same machine at the same moment.
//!
//!   DATABASE_URL=... MASTER_KEY=... cargo run --release --example fence_bench -- [N] [ROUNDS]
//!
//! Uses the first 2N active sessions without a live lease (default
//! N = 500): every other one leased to `fence-bench`, the rest free; each round writes a blob (FENCE_BLOB_BYTES,
//! default 350, as the seeder's) to every one of them. Prints `name value`
//! lines: `writes` (per kind), `unfenced_ms` and `fenced_ms` (median of one
//! write), `ratio` (fenced / unfenced). Both kinds run the fence check; the
//! fenced one finds the lease and share-locks it.

use std::time::Instant;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use vibee_sessions::cli::store::{self, Store};
use vibee_sessions::config::ProcessEnv;
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::leases::{self, Take};
use vibee_sessions::db::{DbError, sessions};
use zeroize::Zeroizing;

const HOLDER: &str = "fence-bench";

#[derive(QueryableByName)]
struct Sid {
    #[diesel(sql_type = Text)]
    session_id: String,
}

fn arg(n: usize, default: usize) -> anyhow::Result<usize> {
    Ok(std::env::args()
        .nth(n)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(default))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = arg(1, 500)?;
    let rounds = arg(2, 5)?;
    let blob_len: usize = std::env::var("FENCE_BLOB_BYTES")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(350);
    // The CLI's own opener: the same master-key sources and database settings.
    let Store { mut conn, vault } = store::open(&ProcessEnv)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ids: Vec<String> = diesel::sql_query(
        "SELECT session_id FROM user_sessions s WHERE is_active AND NOT EXISTS \
           (SELECT 1 FROM session_leases l WHERE l.session_id = s.session_id AND l.expires_at > now()) \
         ORDER BY user_id LIMIT $1",
    )
    .bind::<BigInt, _>(i64::try_from(2 * n)?)
    .load::<Sid>(&mut conn)
    .await?
    .into_iter()
    .map(|s| s.session_id)
    .collect();
    anyhow::ensure!(ids.len() >= 2, "need at least 2 free active sessions");
    // Every other session leased: the two kinds are alike in age and bloat.
    let (mut leased, mut free) = (Vec::new(), Vec::new());
    for (i, id) in ids.into_iter().enumerate() {
        if i % 2 == 0 {
            leased.push(id)
        } else {
            free.push(id)
        }
    }
    let ctx = AuditContext::cli();
    let mut fences = Vec::with_capacity(leased.len());
    for id in &leased {
        match leases::take(&mut conn, &ctx, id, HOLDER, 600).await? {
            Take::Granted { lease, .. } => fences.push((id.clone(), lease.fence)),
            other => anyhow::bail!("{id}: not granted: {other:?}"),
        }
    }
    let blob = vec![0x5a_u8; blob_len];
    let data = || Zeroizing::new(blob.clone());
    // The fence is really checked: the leased sessions refuse a write without it.
    match sessions::put_session_data(&mut conn, &vault, &ctx, &leased[0], data(), None, None).await
    {
        Err(DbError::LeaseRequired) => {}
        other => anyhow::bail!("an unfenced write to a leased session: {other:?}"),
    }

    let (mut unfenced, mut fenced) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (free_id, (leased_id, fence)) in free.iter().zip(&fences) {
            let mut one = async |id: &str, fence: Option<i64>| {
                let t = Instant::now();
                sessions::put_session_data(&mut conn, &vault, &ctx, id, data(), None, fence)
                    .await
                    .map(|_| t.elapsed().as_secs_f64() * 1000.0)
            };
            // Alternate which goes first, so neither always follows the other.
            if round % 2 == 0 {
                unfenced.push(one(free_id, None).await?);
                fenced.push(one(leased_id, Some(*fence)).await?);
            } else {
                fenced.push(one(leased_id, Some(*fence)).await?);
                unfenced.push(one(free_id, None).await?);
            }
        }
    }
    for (id, fence) in &fences {
        leases::release(&mut conn, &ctx, id, HOLDER, *fence).await?;
    }
    let writes = unfenced.len();
    let (u, f) = (median(unfenced), median(fenced));
    println!("writes {writes}");
    println!("blob_bytes {blob_len}");
    println!("unfenced_ms {u:.3}");
    println!("fenced_ms {f:.3}");
    println!("ratio {:.3}", f / u);
    Ok(())
}
