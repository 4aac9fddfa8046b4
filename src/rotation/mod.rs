//! Data key rotation while the service keeps serving, and master key rotation.
//!
//! A data key rotation is: (1) a new primary, in one transaction under the
//! keys lock, announced with NOTIFY; (2) a sweep that re-encrypts every other
//! row in small transactions; (3) a grace period so that every replica has
//! loaded the new primary; (4) a second sweep for rows a late replica wrote
//! under an old key; (5) retirement of every key no row uses, each re-checked
//! under lock. Any step may be killed: the state in the database always says
//! what is left to do, and `rotate --resume` (or a plain `rotate`) does it.
//! See docs/KEY_ROTATION.md.

mod duration;
mod lock;
pub mod master;
mod pace;
pub mod progress;
mod sweep;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use crate::crypto::DataKeyId;
use crate::db::activity::{self, ActivityType, AuditContext};
use crate::db::keys::{self, KeyAdminError, KeyState, KeyStatus};
use crate::db::{DbError, Vault};

pub use duration::{format_duration, parse_duration};
pub use lock::ROTATION_LOCK;
pub use progress::Progress;

/// Longer than the replicas' key refresh (`DEFAULT_KEY_REFRESH`, 10 s) plus a
/// write transaction in flight when they reloaded (bounded by the pool's 30 s
/// statement timeout), so no replica still seals under an old key by then.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// Rows per rotation batch. Measured on 2 cores (scripts/rotation-bench.sh,
/// 100,000 rows): 500 -> 21,150 rows/s, 2,000 -> 25,026, 5,000 -> 21,560.
pub const DEFAULT_BATCH_SIZE: u32 = 2000;

/// Passes of sweep-and-retire after the grace period before giving up on a
/// key that keeps getting rows.
const RETIRE_PASSES: u32 = 5;

#[derive(Debug, Clone)]
pub struct RotateOptions {
    pub batch_size: u32,
    /// The least rest between batches. The sweep also rests by itself, as
    /// long as others use the database (`pace`): this only adds to that.
    pub pause: Duration,
    /// Only finish an unfinished rotation; never start one.
    pub resume: bool,
    /// Start a rotation only when the primary key is at least this old.
    pub if_older_than: Option<Duration>,
    /// How long after the new primary was made old keys may be retired.
    pub grace: Duration,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            pause: Duration::ZERO,
            resume: false,
            if_older_than: None,
            grace: DEFAULT_GRACE,
        }
    }
}

/// How a `rotate` ended.
#[derive(Debug)]
pub enum Outcome {
    /// `--if-older-than`: the primary is younger than asked.
    NotDue {
        primary: DataKeyId,
        age: Duration,
        min_age: Duration,
    },
    /// `--resume` with nothing unfinished (or a rotation another process
    /// finished while we waited for it).
    NothingToDo {
        primary: DataKeyId,
    },
    Finished(Report),
}

#[derive(Debug)]
pub struct Report {
    pub primary: DataKeyId,
    /// Whether this run made the new key (false when it resumed).
    pub new_key: bool,
    /// Rows this process re-encrypted.
    pub rows: u64,
    pub elapsed: Duration,
    pub retired: Vec<DataKeyId>,
}

impl Report {
    pub fn rows_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Key(#[from] KeyAdminError),
    #[error(
        "data key(s) {keys:?} still get new rows after the grace period: a process is still \
         encrypting under an old key (one without the key watcher, or cut off from the \
         database). Make sure every replica runs with the current key ring (keys status shows \
         the primary is {primary}), then run `vibee-sessions rotate --resume`"
    )]
    StillWritten {
        keys: Vec<DataKeyId>,
        primary: DataKeyId,
    },
}

/// Runs (or resumes) a data key rotation on `conn`, which it keeps for the
/// whole run: it holds the rotation lock.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    opts: &RotateOptions,
    progress: &dyn Progress,
) -> Result<Outcome, RotationError> {
    let waited = lock::acquire(conn, progress).await?;
    let result = rotate_locked(conn, vault, opts, progress, waited).await;
    // On error the lock goes with the connection; on success give it back now.
    if result.is_ok() {
        lock::release(conn).await?;
    }
    result
}

async fn rotate_locked(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    opts: &RotateOptions,
    progress: &dyn Progress,
    waited: bool,
) -> Result<Outcome, RotationError> {
    let ctx = AuditContext::cli();
    let status = keys::key_status(conn).await?;
    let primary = primary_of(&status)?;
    let unfinished: Vec<&KeyStatus> = status
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .collect();
    let new_key = if !unfinished.is_empty() {
        let rows: i64 = unfinished.iter().map(|k| k.rows).sum();
        let ids: Vec<DataKeyId> = unfinished.iter().map(|k| k.id).collect();
        if !opts.resume {
            progress.say(&format!(
                "found an unfinished rotation (old key(s) {ids:?} still hold {rows} row(s)); \
                 continuing it instead of creating another key"
            ));
        } else {
            progress.say(&format!(
                "resuming the rotation to key {}: old key(s) {ids:?} hold {rows} row(s)",
                primary.id
            ));
        }
        false
    } else if opts.resume {
        progress.say("no unfinished rotation: nothing to resume");
        return Ok(Outcome::NothingToDo {
            primary: primary.id,
        });
    } else if waited {
        // The rotation we waited for has just made a fresh primary: stacking
        // another key on it would only double the work.
        progress.say(&format!(
            "the rotation we waited for finished (data key {} is primary); not starting another",
            primary.id
        ));
        return Ok(Outcome::NothingToDo {
            primary: primary.id,
        });
    } else {
        if let Some(min_age) = opts.if_older_than {
            let age = age_of(conn, primary.created_at).await?;
            if age < min_age {
                return Ok(Outcome::NotDue {
                    primary: primary.id,
                    age,
                    min_age,
                });
            }
        }
        let promotion = keys::promote_new_primary(conn, vault.master().current(), &ctx).await?;
        progress.say(&format!(
            "data key {} is now primary (key {} turned active); re-encrypting rows",
            promotion.new_primary, promotion.previous
        ));
        true
    };
    let started = Instant::now();
    let ring = vault.reload(conn).await?;
    let primary = ring.primary_id();
    let mut rows = sweep::sweep(conn, vault, opts.batch_size, opts.pause, progress).await?;
    wait_for_grace(conn, opts.grace, progress).await?;
    let mut retired = Vec::new();
    for pass in 1..=RETIRE_PASSES {
        rows += sweep::sweep(conn, vault, opts.batch_size, opts.pause, progress).await?;
        let left = retire_empty(conn, &ctx, &mut retired).await?;
        if left.is_empty() {
            break;
        }
        if pass == RETIRE_PASSES {
            return Err(RotationError::StillWritten {
                keys: left,
                primary,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let report = Report {
        primary,
        new_key,
        rows,
        elapsed: started.elapsed(),
        retired,
    };
    activity::record_unscoped_event(
        conn,
        &ctx,
        ActivityType::KeyRotationFinished,
        json!({
            "primary": primary.0,
            "rows_reencrypted": report.rows,
            "retired": report.retired,
            "resumed": !new_key,
        }),
    )
    .await?;
    Ok(Outcome::Finished(report))
}

fn primary_of(status: &[KeyStatus]) -> Result<&KeyStatus, KeyAdminError> {
    status
        .iter()
        .find(|k| k.state == KeyState::Primary)
        .ok_or(KeyAdminError::NoPrimary)
}

/// The database's clock, so a skewed host clock cannot shorten the grace period.
async fn db_now(conn: &mut AsyncPgConnection) -> Result<DateTime<Utc>, DbError> {
    use diesel::IntoSql;
    use diesel::sql_types::Timestamptz;
    Ok(diesel::select(diesel::dsl::now.into_sql::<Timestamptz>())
        .get_result(conn)
        .await?)
}

async fn age_of(conn: &mut AsyncPgConnection, since: DateTime<Utc>) -> Result<Duration, DbError> {
    Ok((db_now(conn).await? - since).to_std().unwrap_or_default())
}

/// Waits until the primary is `grace` old. Replicas reload their ring on the
/// NOTIFY at once, and every `DEFAULT_KEY_REFRESH` anyway; after the grace
/// period none still seals under an old key, so the second sweep is the last
/// one an old key needs. A resumed rotation whose primary is old waits not at all.
async fn wait_for_grace(
    conn: &mut AsyncPgConnection,
    grace: Duration,
    progress: &dyn Progress,
) -> Result<(), RotationError> {
    let status = keys::key_status(conn).await?;
    let primary = primary_of(&status)?;
    let age = age_of(conn, primary.created_at).await?;
    if let Some(left) = grace.checked_sub(age).filter(|d| !d.is_zero()) {
        progress.say(&format!(
            "waiting {:.1} s (grace period) so every replica encrypts with key {} before old \
             keys are retired",
            left.as_secs_f64(),
            primary.id
        ));
        tokio::time::sleep(left).await;
    }
    Ok(())
}

/// Retires every active key no row uses; returns the ids still in use.
async fn retire_empty(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    retired: &mut Vec<DataKeyId>,
) -> Result<Vec<DataKeyId>, RotationError> {
    let mut left = Vec::new();
    for key in keys::key_status(conn).await? {
        if key.state != KeyState::Active {
            continue;
        }
        if keys::retire_if_empty(conn, ctx, key.id).await? {
            tracing::info!(data_key_id = key.id.0, "data key retired");
            retired.push(key.id);
        } else {
            left.push(key.id);
        }
    }
    Ok(left)
}
