//! Audited reads without a commit per read: group commit.
//!
//! The API's reads of secrets (credentials, the MTProto blob) hand their
//! audit event to one background writer and wait until the batch holding it
//! has committed; only then is the response sent (fail closed, as OpenBao's
//! audit is: no secret leaves without its durable record). The writer takes
//! every event already queued into one batch (up to `MAX_BATCH` rows, one
//! INSERT, one commit), so concurrent reads share a commit, and sends it as
//! soon as one of its connections is free (`MAX_IN_FLIGHT` by default): the next batch
//! forms and goes out while earlier ones are still waiting for their WAL
//! flush, and PostgreSQL's own group commit flushes them together. A read
//! therefore waits about one flush, not the tail of the one ahead of it plus
//! its own (docs/perf/NOTES.md has the figures). Durability is the server's
//! `synchronous_commit` (on by default), never weakened here. A read whose
//! row cannot be written waits, and fails with the request timeout; it is
//! never answered. Changes keep writing their audit row inside their own
//! transaction.
//!
//! Ordering within a process: before an audited write, and before the audit
//! trail or stats are read, callers `flush()`: every event queued before is
//! then committed, so a process's own audit rows are in the order it acted.
//!
//! A process killed mid-batch loses only rows of reads it never answered
//! (docs/SECURITY.md, "Audit log durability").

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::{ActivityType, AuditContext, Event};
use crate::db::Pool;
use crate::db::error::DbError;

/// Events the queue holds before readers wait.
pub const QUEUE_CAPACITY: usize = 4096;
/// Rows per INSERT (and per commit).
pub const MAX_BATCH: usize = 512;
/// Batches committing at once by default (`AUDIT_MAX_IN_FLIGHT`), each on
/// its own connection of the writer's pool (give it at least this many).
/// One: on a quiet 2-core machine more commits in flight cost more than they
/// overlap (docs/perf/NOTES.md: c=64 reads, 1 → 7,534 req/s, 2 → 7,002,
/// 4 → 6,510); under CPU contention 4 did better. A server with faster
/// disks or more cores may raise it.
pub const MAX_IN_FLIGHT: usize = 1;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum Msg {
    /// An event, and who waits for its commit.
    Event(Row, oneshot::Sender<()>),
    Flush(oneshot::Sender<()>),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct AuditQueue {
    tx: mpsc::Sender<Msg>,
    /// Events queued and not yet committed.
    pending: Arc<AtomicUsize>,
}

fn stopped() -> DbError {
    DbError::Unavailable("the audit log writer has stopped".into())
}

impl AuditQueue {
    /// Starts the writer on `pool`. It runs until every `AuditQueue` clone is
    /// dropped and the queue is drained; await the handle to know it is done.
    /// At most `in_flight` batches commit at once (1: each batch waits for
    /// the one before it).
    pub fn spawn(pool: Pool, in_flight: usize) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let pending = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(run(pool, rx, Arc::clone(&pending), in_flight.max(1)));
        (Self { tx, pending }, writer)
    }

    /// Records an event: returns once the row is committed (waiting for room
    /// first when the queue is full). Only then may the secret it describes
    /// be handed out.
    pub async fn record(&self, ctx: &AuditContext, event: Event<'_>) -> Result<(), DbError> {
        let row = Row {
            session_id: event.session_id.map(str::to_owned),
            user_id: event.user_id.map(str::to_owned),
            activity_type: event.kind,
            actor: ctx.actor.clone(),
            request_id: ctx.request_id.clone(),
            details: event.details,
            created_at: Some(Utc::now()),
        };
        let (committed, wait) = oneshot::channel();
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(Msg::Event(row, committed)).await.is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(stopped());
        }
        wait.await.map_err(|_| stopped())
    }

    /// Waits until every event queued before this call is committed.
    pub async fn flush(&self) -> Result<(), DbError> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Flush(done))
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())
    }

    /// Events queued and not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

/// A batch being committed: its number, its size and who waits for it.
struct Committed {
    number: u64,
    rows: usize,
    waiters: Vec<oneshot::Sender<()>>,
}

/// The writer's books: which batches have committed, and the flushes
/// waiting for every batch up to a number.
struct Ledger {
    /// Every batch numbered below this has committed.
    committed_below: u64,
    /// Batches at or above `committed_below` that committed out of order.
    early: BTreeSet<u64>,
    /// Flushes waiting until `committed_below` reaches their number.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
}

impl Ledger {
    fn committed(&mut self, number: u64) {
        self.early.insert(number);
        while self.early.remove(&self.committed_below) {
            self.committed_below += 1;
        }
        let below = self.committed_below;
        for (_, done) in self.flushes.extract_if(.., |(upto, _)| *upto <= below) {
            let _ = done.send(());
        }
    }

    /// A flush answered once every batch numbered below `upto` has committed.
    fn flush(&mut self, upto: u64, done: oneshot::Sender<()>) {
        if upto <= self.committed_below {
            let _ = done.send(());
        } else {
            self.flushes.push((upto, done));
        }
    }
}

async fn run(
    pool: Pool,
    mut rx: mpsc::Receiver<Msg>,
    pending: Arc<AtomicUsize>,
    max_in_flight: usize,
) {
    let mut forming: Vec<Row> = Vec::with_capacity(MAX_BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    // The number the batch being formed will carry.
    let mut number: u64 = 0;
    let mut ledger = Ledger {
        committed_below: 0,
        early: BTreeSet::new(),
        flushes: Vec::new(),
    };
    let mut in_flight: JoinSet<Committed> = JoinSet::new();
    let mut open = true;
    loop {
        // Send what has gathered as soon as a commit slot is free: a batch is
        // formed while the previous ones are still committing, so a read
        // waits for one commit, not for the one ahead of it and then its own.
        if !forming.is_empty() && in_flight.len() < max_in_flight {
            let batch = std::mem::replace(&mut forming, Vec::with_capacity(MAX_BATCH));
            let batch_waiters = std::mem::take(&mut waiters);
            let pool = pool.clone();
            let this = number;
            number += 1;
            in_flight.spawn(async move {
                write_until_done(&pool, &batch).await;
                Committed {
                    number: this,
                    rows: batch.len(),
                    waiters: batch_waiters,
                }
            });
        }
        if !open && in_flight.is_empty() && forming.is_empty() {
            return;
        }
        let room = forming.len() < MAX_BATCH;
        tokio::select! {
            // Answer the committed first: they free a slot and their readers.
            biased;
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                // A writer task only ends by committing (it retries until
                // then); a panic in one would leave its readers to time out.
                let Ok(done) = done else { continue };
                pending.fetch_sub(done.rows, Ordering::AcqRel);
                metrics::counter!("vibee_audit_rows_written_total").increment(done.rows as u64);
                metrics::gauge!("vibee_audit_queue_pending")
                    .set(pending.load(Ordering::Acquire) as f64);
                for w in done.waiters {
                    let _ = w.send(());
                }
                ledger.committed(done.number);
            }
            msg = rx.recv(), if open && room => match msg {
                Some(msg) => {
                    let mut next = Some(msg);
                    // Take everything already queued into this batch.
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Event(row, committed) => {
                                forming.push(row);
                                waiters.push(committed);
                            }
                            // Events queued before the flush are in the batch
                            // being formed (if any) or in those sent before it.
                            Msg::Flush(done) => {
                                let upto = number + u64::from(!forming.is_empty());
                                ledger.flush(upto, done);
                            }
                        }
                        if forming.len() < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                }
                None => open = false,
            },
        }
    }
}

/// Writes a batch, retrying with backoff while the database is away: the
/// queue fills meanwhile and readers wait, which is the back-pressure.
async fn write_until_done(pool: &Pool, batch: &[Row]) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match write(pool, batch).await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!("vibee_audit_write_failures_total").increment(1);
                tracing::error!(
                    error = %e,
                    rows = batch.len(),
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot write audit rows; retrying (audited reads wait meanwhile)"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn write(pool: &Pool, batch: &[Row]) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    insert_rows(&mut conn, batch).await
}

/// One audit row to insert in bulk.
pub(crate) struct Row {
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub activity_type: ActivityType,
    pub actor: String,
    pub request_id: Option<String>,
    pub details: Value,
    /// `None`: the database's `now()` (the transaction's time).
    pub created_at: Option<DateTime<Utc>>,
}

/// Inserts rows with one fixed statement over arrays (`unnest`): seven
/// parameters however many rows, where a multi-row VALUES list would make
/// PostgreSQL parse and plan seven per row.
pub(crate) async fn insert_rows(
    conn: &mut diesel_async::AsyncPgConnection,
    batch: &[Row],
) -> Result<(), DbError> {
    // Imported here: its blanket `load` would shadow `AtomicUsize::load` above.
    use diesel_async::RunQueryDsl;
    let col = |f: fn(&Row) -> Option<String>| batch.iter().map(f).collect::<Vec<_>>();
    diesel::sql_query(
        "INSERT INTO session_activity \
             (session_id, user_id, activity_type, actor, request_id, details, created_at) \
         SELECT s, u, t, a, r, d, COALESCE(c, now()) \
         FROM unnest($1, $2, $3, $4, $5, $6, $7) AS x(s, u, t, a, r, d, c)",
    )
    .bind::<Array<Nullable<Text>>, _>(col(|r| r.session_id.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(|r| r.user_id.clone()))
    .bind::<Array<Text>, _>(batch.iter().map(|r| r.activity_type).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(batch.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(col(|r| r.request_id.clone()))
    .bind::<Array<Jsonb>, _>(batch.iter().map(|r| &r.details).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(batch.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        Ledger {
            committed_below: 0,
            early: BTreeSet::new(),
            flushes: Vec::new(),
        }
    }

    #[test]
    fn a_flush_waits_for_every_earlier_batch_even_when_later_ones_commit_first() {
        let mut l = ledger();
        // Batches 0, 1 and 2 in flight; a flush queued after all three.
        let (done, mut wait) = oneshot::channel();
        l.flush(3, done);
        l.committed(2);
        l.committed(0);
        assert!(wait.try_recv().is_err(), "batch 1 has not committed");
        l.committed(1);
        assert!(wait.try_recv().is_ok());
        assert_eq!(l.committed_below, 3);
        assert!(l.early.is_empty());
    }

    #[test]
    fn a_flush_with_nothing_outstanding_is_answered_at_once() {
        let mut l = ledger();
        let (done, mut wait) = oneshot::channel();
        l.flush(0, done);
        assert!(wait.try_recv().is_ok());
        l.committed(0);
        let (done, mut wait) = oneshot::channel();
        l.flush(1, done);
        assert!(wait.try_recv().is_ok());
    }
}
