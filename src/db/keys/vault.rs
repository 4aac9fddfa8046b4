//! `Vault`: the keys of one process (the master keys, the unwrapped ring)
//! and the nonce budget it reserves in the database, a block at a time.
//! Opening it creates the first data key on an empty database; reloading it
//! follows rotations made elsewhere and says when the ring has gone stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::crypto::{DataKeyId, KeyRing, SharedKeyRing};
use crate::db::error::DbError;
use crate::db::schema::encryption_keys;
use crate::kek::Keks;

use super::kek::{rows_digest, unwrap_ring};
use super::{
    KeyState, NONCE_WARN_AT, check_kek_ids, insert_data_key, live_keys, lock_keys, nonce_warning,
    prepare_data_key,
};

/// Encryptions reserved per round trip. A crash wastes at most this many from
/// the count, which is the safe direction for a nonce budget.
const NONCE_BLOCK: u64 = 1024;

/// The process's keys: the master keys, the unwrapped ring, and the budget of
/// encryptions reserved in the database.
pub struct Vault {
    master: Keks,
    ring: SharedKeyRing,
    loaded_from: Mutex<[u8; 32]>,
    reserved: Mutex<HashMap<DataKeyId, u64>>,
    /// When the ring was last loaded successfully, and how old that may get
    /// before the ring counts as stale and nothing is sealed with it.
    freshness: Mutex<Freshness>,
}

struct Freshness {
    loaded_at: Instant,
    /// `None` in processes that run no refresher (the CLI's short commands,
    /// and `rotate`, which holds the rotation lock): only the database's
    /// refusal guards them.
    stale_after: Option<Duration>,
    /// Said once per stale spell, not on every refused write.
    reported: bool,
}

/// A ring not reloaded for this many refresh periods is stale.
pub const STALE_AFTER_PERIODS: u32 = 3;

impl Vault {
    /// Checks the master key against the stored keys, creates the first data
    /// key on an empty database (exactly one primary, however many processes
    /// start at once), and loads the ring.
    pub async fn open(
        conn: &mut AsyncPgConnection,
        master: impl Into<Keks>,
    ) -> Result<Self, DbError> {
        let master = master.into();
        let rows = live_keys(conn).await?;
        check_kek_ids(&rows, &master)?;
        if rows.is_empty() {
            // Wrapped before the transaction (a transit call must not hold
            // the keys lock); unused when another process got there first.
            let first = prepare_data_key(conn, master.current()).await?;
            conn.transaction::<_, DbError, _>(async |conn| {
                lock_keys(conn).await?;
                if live_keys(conn).await?.is_empty() {
                    let id = insert_data_key(conn, &first, KeyState::Primary).await?;
                    tracing::info!(data_key_id = id.0, "created the first data key");
                }
                Ok(())
            })
            .await?;
        }
        let rows = live_keys(conn).await?;
        let ring = unwrap_ring(&rows, &master).await?;
        warn_if_over_budget(conn, ring.primary_id()).await?;
        Ok(Self {
            master,
            ring: SharedKeyRing::new(ring),
            loaded_from: Mutex::new(rows_digest(&rows)),
            reserved: Mutex::new(HashMap::new()),
            freshness: Mutex::new(Freshness {
                loaded_at: Instant::now(),
                stale_after: None,
                reported: false,
            }),
        })
    }

    /// Sets the refresh period this process runs with: its ring is stale
    /// after `STALE_AFTER_PERIODS` of them without a successful reload.
    pub fn set_refresh_period(&self, period: Duration) {
        self.freshness().stale_after = Some(period * STALE_AFTER_PERIODS);
    }

    fn freshness(&self) -> std::sync::MutexGuard<'_, Freshness> {
        self.freshness.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(reason)` when the ring is stale: it has not been reloaded for
    /// longer than allowed, so a rotation elsewhere may have retired its
    /// primary. Logged once per stale spell.
    pub fn staleness(&self) -> Option<String> {
        let mut f = self.freshness();
        let age = f.loaded_at.elapsed();
        let allowed = f.stale_after?;
        if age <= allowed {
            return None;
        }
        let reason = format!(
            "no successful reload for {} s (allowed: {} s)",
            age.as_secs(),
            allowed.as_secs()
        );
        if !f.reported {
            f.reported = true;
            tracing::error!(
                %reason,
                "key ring is stale: not encrypting (writes answer 503) until a reload succeeds"
            );
        }
        Some(reason)
    }

    pub fn master(&self) -> &Keks {
        &self.master
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.get()
    }

    /// Re-reads the key ring (after a rotation, or on meeting an unknown key id).
    /// Rows unchanged since the last load keep the ring in memory as it is.
    pub async fn reload(&self, conn: &mut AsyncPgConnection) -> Result<Arc<KeyRing>, DbError> {
        let rows = live_keys(conn).await?;
        let digest = rows_digest(&rows);
        // Unchanged rows prove the ring in memory is current: it is fresh
        // again without unwrapping anything (no secrets engine call).
        if *self.loaded_from.lock().unwrap_or_else(|p| p.into_inner()) != digest {
            let ring = unwrap_ring(&rows, &self.master).await?;
            self.ring.replace(ring);
            *self.loaded_from.lock().unwrap_or_else(|p| p.into_inner()) = digest;
        }
        let mut f = self.freshness();
        if f.reported {
            tracing::info!("key ring reloaded: no longer stale");
        }
        f.loaded_at = Instant::now();
        f.reported = false;
        drop(f);
        Ok(self.ring.get())
    }

    /// A reload after the database refused a write under a key no longer
    /// live. A key error (the keys are under a master key this process does
    /// not hold) means it cannot catch up: the write is answered as stale.
    pub async fn reload_after_refusal(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> Result<Arc<KeyRing>, DbError> {
        tracing::info!(
            "a write was refused under a data key no longer live; reloading the key ring"
        );
        self.reload(conn).await.map_err(|e| match e {
            DbError::Key(k) => DbError::KeyRingStale(format!("cannot reload it: {k}")),
            other => other,
        })
    }

    /// The ring to seal with, after counting `n` encryptions against its
    /// primary key. Counts are reserved in blocks, so most calls touch no row.
    pub async fn reserve(
        &self,
        conn: &mut AsyncPgConnection,
        n: u64,
    ) -> Result<Arc<KeyRing>, DbError> {
        if let Some(reason) = self.staleness() {
            return Err(DbError::KeyRingStale(reason));
        }
        let ring = self.ring();
        let id = ring.primary_id();
        metrics::counter!("vibee_encryptions_reserved_total").increment(n);
        if self.take(id, n) {
            return Ok(ring);
        }
        // Big requests (a rotation batch) reserve for several of themselves,
        // so a batch does not cost a write of its own.
        let block = NONCE_BLOCK.max(n.saturating_mul(8));
        // The same one statement as ever: returning the count costs no extra write.
        let count: i64 = diesel::update(encryption_keys::table.find(id))
            .set(
                encryption_keys::encryption_count
                    .eq(encryption_keys::encryption_count + block as i64),
            )
            .returning(encryption_keys::encryption_count)
            .get_result(conn)
            .await?;
        // Warn once when a block crosses the threshold (and again at every start).
        if count - (block as i64) < NONCE_WARN_AT
            && let Some(w) = nonce_warning(id, KeyState::Primary, count)
        {
            tracing::warn!(data_key_id = id.0, encryptions = count, "{w}");
        }
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        *reserved.entry(id).or_default() += block - n;
        Ok(ring)
    }

    fn take(&self, id: DataKeyId, n: u64) -> bool {
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        match reserved.get_mut(&id) {
            Some(left) if *left >= n => {
                *left -= n;
                true
            }
            _ => false,
        }
    }
}

/// Logs the nonce-budget warning for the primary key at start-up.
async fn warn_if_over_budget(
    conn: &mut AsyncPgConnection,
    primary: DataKeyId,
) -> Result<(), DbError> {
    let count: i64 = encryption_keys::table
        .find(primary)
        .select(encryption_keys::encryption_count)
        .first(conn)
        .await?;
    if let Some(w) = nonce_warning(primary, KeyState::Primary, count) {
        tracing::warn!(data_key_id = primary.0, encryptions = count, "{w}");
    }
    Ok(())
}
