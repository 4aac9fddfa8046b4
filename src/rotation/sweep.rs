//! Moving rows onto the primary key, batch by batch.

use std::time::{Duration, Instant};

use diesel_async::AsyncPgConnection;

use crate::db::sessions::{reseal_batch, rows_not_on};
use crate::db::{DbError, Vault};

use super::pace::{Pace, others_busy};
use super::progress::Progress;

/// How long to wait when every remaining row is locked by someone else.
const LOCKED_ROWS_WAIT: Duration = Duration::from_millis(100);

/// Re-encrypts every row not on the vault's primary key; returns how many
/// rows this process moved. Each batch commits on its own, so stopping at any
/// point loses nothing. Batches of up to `batch_size` rows, paced to the
/// load others put on the database (`pace`), and at least `pause` apart.
pub async fn sweep(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    batch_size: u32,
    pause: Duration,
    progress: &dyn Progress,
) -> Result<u64, DbError> {
    let primary = vault.ring().primary_id();
    let total = rows_not_on(conn, primary).await?;
    if total == 0 {
        return Ok(0);
    }
    progress.start(total as u64);
    let mut done = 0u64;
    let mut pace = Pace::default();
    pace.observe(others_busy(conn).await?);
    loop {
        let started = Instant::now();
        let moved = reseal_batch(conn, vault, pace.batch(batch_size)).await? as u64;
        let worked = started.elapsed();
        if moved == 0 {
            // SKIP LOCKED found nothing free: either we are done, or writers
            // hold the rest (they move those rows themselves, or free them soon).
            if rows_not_on(conn, primary).await? == 0 {
                break;
            }
            tokio::time::sleep(LOCKED_ROWS_WAIT).await;
            continue;
        }
        done += moved;
        progress.advance(moved);
        pace.observe(others_busy(conn).await?);
        let rest = pace.rest(worked).max(pause);
        if !rest.is_zero() {
            // Outside any transaction: resting never holds a lock.
            tokio::time::sleep(rest).await;
        }
    }
    progress.finish();
    Ok(done)
}
