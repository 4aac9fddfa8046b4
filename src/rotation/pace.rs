//! How the sweep yields to the API, with no knob to set.
//!
//! Measured (docs/perf/ROTATION.md): while a rotation runs, the API's reads
//! lose CPU to the rotation's backend (it re-encrypts and rewrites rows
//! flat out) and wait in `WALSync` for their audit commits, which flush the
//! rotation's WAL too. Both scale with how much of the time the rotation
//! works. So after each batch the sweep looks at whether anyone else is
//! using the database (another client backend of this database in a
//! statement or a transaction: on a serving system, that is the API), and
//! keeps a moving average of the answer. Alone, it works flat out in full
//! batches. Under load it works in small batches (short WAL bursts, short
//! row locks) and rests `REST_PER_WORK` times as long as each batch took,
//! scaled by how busy the database looked: it gives the API most of the
//! machine, and takes it back as soon as the API goes quiet.

use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::DbError;

/// Rows per batch while others use the database: about 15 ms of work on
/// the 2-core bench machine, so a read's audit commit never waits behind a
/// long WAL burst.
pub(super) const BUSY_BATCH: u32 = 500;
/// Rest per unit of work when the database looks busy all the time: the
/// sweep then works 1/(1 + 4) of the time.
const REST_PER_WORK: f64 = 4.0;
/// Weight of the newest look (a moving average over about the last four
/// batches): one quiet instant does not unleash the sweep, and a burst of
/// load slows it within a batch or two.
const WEIGHT: f64 = 0.25;
/// Above this average the database counts as busy (small batches, rests).
const BUSY_AT: f64 = 0.25;

/// The sweep's view of the load others put on the database.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Moving average of "someone else was busy when we looked" (0..=1).
    busy: f64,
    looked: bool,
}

impl Pace {
    /// One look: was another client of this database busy?
    pub(super) fn observe(&mut self, others_busy: bool) {
        let now = if others_busy { 1.0 } else { 0.0 };
        self.busy = if self.looked {
            WEIGHT * now + (1.0 - WEIGHT) * self.busy
        } else {
            now
        };
        self.looked = true;
    }

    /// Rows for the next batch, at most `full`.
    pub(super) fn batch(&self, full: u32) -> u32 {
        if self.busy >= BUSY_AT {
            BUSY_BATCH.min(full)
        } else {
            full
        }
    }

    /// How long to rest after a batch that took `worked`: nothing while the
    /// database looks quiet.
    pub(super) fn rest(&self, worked: Duration) -> Duration {
        if self.busy >= BUSY_AT {
            worked.mul_f64(REST_PER_WORK * self.busy)
        } else {
            Duration::ZERO
        }
    }
}

/// Whether another client backend of this database is in a statement or a
/// transaction right now (the API's pool, a boot loader, ...). Our own
/// connection, other databases and PostgreSQL's background workers do not
/// count.
pub(super) async fn others_busy(conn: &mut AsyncPgConnection) -> Result<bool, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Busy {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let busy: Busy = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'",
    )
    .get_result(conn)
    .await?;
    Ok(busy.n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_it_works_flat_out_in_full_batches() {
        let mut pace = Pace::default();
        for _ in 0..10 {
            pace.observe(false);
        }
        assert_eq!(pace.batch(2000), 2000);
        assert_eq!(pace.rest(Duration::from_millis(50)), Duration::ZERO);
    }

    #[test]
    fn under_steady_load_it_works_a_fifth_of_the_time_in_small_batches() {
        let mut pace = Pace::default();
        for _ in 0..10 {
            pace.observe(true);
        }
        assert_eq!(pace.batch(2000), BUSY_BATCH);
        assert_eq!(pace.batch(100), 100);
        assert_eq!(
            pace.rest(Duration::from_millis(10)),
            Duration::from_millis(40)
        );
    }

    #[test]
    fn it_follows_the_load_both_ways_within_a_few_batches() {
        let mut pace = Pace::default();
        pace.observe(true);
        assert_eq!(pace.batch(2000), BUSY_BATCH, "the first look counts fully");
        for _ in 0..8 {
            pace.observe(false);
        }
        assert_eq!(pace.batch(2000), 2000);
        assert_eq!(pace.rest(Duration::from_millis(100)), Duration::ZERO);
        pace.observe(true);
        assert_eq!(pace.batch(2000), BUSY_BATCH, "one busy look slows it");
        assert!(pace.rest(Duration::from_millis(10)) >= Duration::from_millis(10));
    }
}
