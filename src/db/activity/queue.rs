//! Audited reads without a commit per read: group commit.
//!
//! The API's reads of secrets (credentials, the MTProto blob) hand their
//! audit event to one background writer and wait until the batch holding it
//! has committed; only then is the response sent (fail closed, as OpenBao's
//! audit is: no secret leaves without its durable record). The writer takes
//! every event queued while its previous INSERT was in flight into the next
//! one (up to `MAX_BATCH` rows, one commit), so concurrent reads share a
//! commit. A read whose row cannot be written waits, and fails with the
//! request timeout; it is never answered. Changes keep writing their audit
//! row inside their own transaction.
//!
//! Ordering within a process: before an audited write, and before the audit
//! trail or stats are read, callers `flush()`: every event queued before is
//! then committed, so a process's own audit rows are in the order it acted.
//!
//! A process killed mid-batch loses only rows of reads it never answered
//! (docs/SECURITY.md, "Audit log durability").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{AuditContext, Event};
use crate::db::Pool;
use crate::db::error::DbError;

/// Events the queue holds before readers wait.
pub const QUEUE_CAPACITY: usize = 4096;
/// Rows per INSERT (and per commit).
pub const MAX_BATCH: usize = 512;

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
    pub fn spawn(pool: Pool) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let pending = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(run(pool, rx, Arc::clone(&pending)));
        (Self { tx, pending }, writer)
    }

    /// Records an event: returns once the row is committed (waiting for room
    /// first when the queue is full). Only then may the secret it describes
    /// be handed out.
    pub async fn record(&self, ctx: &AuditContext, event: Event<'_>) -> Result<(), DbError> {
        let row = Row {
            session_id: event.session_id.map(str::to_owned),
            user_id: event.user_id.map(str::to_owned),
            activity_type: event.kind.as_str(),
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

async fn run(pool: Pool, mut rx: mpsc::Receiver<Msg>, pending: Arc<AtomicUsize>) {
    let mut batch: Vec<Row> = Vec::with_capacity(MAX_BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(row, committed) => {
                    batch.push(row);
                    waiters.push(committed);
                }
                Msg::Flush(done) => waiters.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            write_until_done(&pool, &batch).await;
            pending.fetch_sub(batch.len(), Ordering::AcqRel);
            metrics::counter!("vibee_audit_rows_written_total").increment(batch.len() as u64);
            batch.clear();
        }
        metrics::gauge!("vibee_audit_queue_pending").set(pending.load(Ordering::Acquire) as f64);
        for done in waiters.drain(..) {
            let _ = done.send(());
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
    pub activity_type: &'static str,
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
