//! Data keys in the database: creating the first one, loading and unwrapping
//! the key ring, the passphrase KDF parameters, and the nonce budget.
//! Changes to the set of keys (rotation, retirement, destruction, re-wrapping)
//! live in `lifecycle`; the listener that makes running processes follow them
//! lives in `watcher`.

mod kek;
mod lifecycle;
mod rewrap;
mod state;
mod status;
mod watcher;

pub use kek::{connect_transit, unlock_kek};
pub(crate) use kek::{insert_data_key, prepare_data_key};
use kek::{rows_digest, unwrap_ring};
pub use lifecycle::{
    KEYS_CHANNEL, KeyAdminError, Promotion, destroy_key, promote_new_primary, retire_if_empty,
};
pub use rewrap::{RewrapReport, rewrap_all};
pub use state::KeyState;
pub use status::{KeyStatus, key_status};
pub use watcher::{DEFAULT_KEY_REFRESH, spawn_key_watcher, spawn_pool_refresh};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;

use crate::crypto::{DataKeyId, KdfParams, KekId, KeyError, KeyRing, SharedKeyRing};
use crate::kek::Keks;
use crate::transit::TransitSettings;

use super::error::DbError;
use super::schema::{encryption_keys, master_key_kdf};

/// Advisory lock key serialising changes to the set of data keys ("vibee-ky").
pub(crate) const KEYS_LOCK: i64 = 0x7669_6265_652d_6b79;

/// Encryptions reserved per round trip. A crash wastes at most this many from
/// the count, which is the safe direction for a nonce budget.
const NONCE_BLOCK: u64 = 1024;

/// Encryptions under one key past which we warn: a quarter of the 2^32 that
/// NIST SP 800-38D allows for random 96-bit nonces, so there is ample time to
/// rotate before the limit.
pub const NONCE_WARN_AT: i64 = 1 << 30;

/// The nonce-budget warning for a key that encrypts (the primary), if due.
pub fn nonce_warning(id: i32, state: KeyState, encryptions: i64) -> Option<String> {
    (state == KeyState::Primary && encryptions >= NONCE_WARN_AT).then(|| {
        format!(
            "data key {id} has made {encryptions} encryptions, past 2^30 (a quarter of the \
             2^32 limit for random 96-bit nonces, NIST SP 800-38D): rotate \
             (vibee-sessions rotate) to start a new data key"
        )
    })
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = encryption_keys)]
struct StoredKey {
    id: i32,
    wrapped_key: Vec<u8>,
    kek_id: String,
    state: KeyState,
}

fn key_id(id: i32) -> DataKeyId {
    DataKeyId(u32::try_from(id).expect("encryption_keys.id is CHECK (id > 0)"))
}

/// Where the master key comes from, once configuration has been read.
pub enum MasterKeySource {
    Key(crate::crypto::MasterKey),
    /// Derived with Argon2id and the parameters stored in the database.
    Passphrase(SecretString),
    /// A key in a transit secrets engine (`MASTER_KEY_TRANSIT_KEY`).
    Transit(TransitSettings),
}

/// Turns a local source into the master key. A passphrase needs the
/// stored KDF parameters; on a database with no keys yet, they are created.
pub async fn unlock(
    conn: &mut AsyncPgConnection,
    source: MasterKeySource,
) -> Result<crate::crypto::MasterKey, DbError> {
    let passphrase = match source {
        MasterKeySource::Key(key) => return Ok(key),
        MasterKeySource::Transit(_) => {
            return Err(DbError::Key(KeyError::MasterKeyUnavailable(
                "a transit master key is not a local key (use unlock_kek)".into(),
            )));
        }
        MasterKeySource::Passphrase(p) => p,
    };
    let params = conn
        .transaction::<_, DbError, _>(async |conn| {
            lock_keys(conn).await?;
            if let Some(params) = load_kdf_params(conn).await? {
                return Ok(params);
            }
            let any_key = encryption_keys::table
                .select(encryption_keys::id)
                .first::<i32>(conn)
                .await
                .optional()?;
            if any_key.is_some() {
                return Err(DbError::Key(KeyError::KdfParamsOutOfBounds(
                    "the data keys were wrapped under a key, not a passphrase \
                         (no passphrase parameters are stored); set MASTER_KEY or MASTER_KEY_FILE"
                        .into(),
                )));
            }
            let params = KdfParams::generate();
            store_kdf_params(conn, &params).await?;
            Ok(params)
        })
        .await?;
    // Argon2 runs outside the transaction: it takes a while on purpose.
    let derived = tokio::task::spawn_blocking(move || params.derive(&passphrase))
        .await
        .map_err(|e| DbError::Internal(format!("key derivation task failed: {e}")))??;
    Ok(derived)
}

async fn lock_keys(conn: &mut AsyncPgConnection) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(KEYS_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn load_kdf_params(conn: &mut AsyncPgConnection) -> Result<Option<KdfParams>, DbError> {
    let row = master_key_kdf::table
        .select((
            master_key_kdf::salt,
            master_key_kdf::m_cost_kib,
            master_key_kdf::t_cost,
            master_key_kdf::parallelism,
        ))
        .first::<(Vec<u8>, i32, i32, i32)>(conn)
        .await
        .optional()?;
    Ok(row.map(|(salt, m, t, p)| KdfParams {
        salt,
        // Negative values are out of bounds: map them to 0 and let validate() say so.
        m_cost_kib: u32::try_from(m).unwrap_or(0),
        t_cost: u32::try_from(t).unwrap_or(0),
        parallelism: u32::try_from(p).unwrap_or(0),
    }))
}

pub(crate) async fn store_kdf_params(
    conn: &mut AsyncPgConnection,
    params: &KdfParams,
) -> Result<(), DbError> {
    let as_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    diesel::insert_into(master_key_kdf::table)
        .values((
            master_key_kdf::algorithm.eq("argon2id"),
            master_key_kdf::salt.eq(&params.salt),
            master_key_kdf::m_cost_kib.eq(as_i32(params.m_cost_kib)),
            master_key_kdf::t_cost.eq(as_i32(params.t_cost)),
            master_key_kdf::parallelism.eq(as_i32(params.parallelism)),
        ))
        .on_conflict(master_key_kdf::singleton)
        .do_update()
        .set((
            master_key_kdf::salt.eq(&params.salt),
            master_key_kdf::m_cost_kib.eq(as_i32(params.m_cost_kib)),
            master_key_kdf::t_cost.eq(as_i32(params.t_cost)),
            master_key_kdf::parallelism.eq(as_i32(params.parallelism)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Checks that every live data key was wrapped under a master key we hold.
/// Nothing is created or unwrapped before this passes.
fn check_kek_ids(rows: &[StoredKey], master: &Keks) -> Result<(), KeyError> {
    for row in rows {
        master.check(key_id(row.id), &KekId::from_stored(row.kek_id.clone()))?;
    }
    Ok(())
}

async fn live_keys(conn: &mut AsyncPgConnection) -> Result<Vec<StoredKey>, DbError> {
    Ok(encryption_keys::table
        .filter(encryption_keys::state.ne(KeyState::Retired.as_str()))
        .select(StoredKey::as_select())
        .order(encryption_keys::id)
        .load(conn)
        .await?)
}

/// Loads and unwraps every live data key.
pub async fn load_key_ring(
    conn: &mut AsyncPgConnection,
    master: &Keks,
) -> Result<KeyRing, DbError> {
    let rows = live_keys(conn).await?;
    Ok(unwrap_ring(&rows, master).await?)
}

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
        let count: i64 = diesel::update(encryption_keys::table.find(id.0 as i32))
            .set(
                encryption_keys::encryption_count
                    .eq(encryption_keys::encryption_count + block as i64),
            )
            .returning(encryption_keys::encryption_count)
            .get_result(conn)
            .await?;
        // Warn once when a block crosses the threshold (and again at every start).
        if count - (block as i64) < NONCE_WARN_AT
            && let Some(w) = nonce_warning(id.0 as i32, KeyState::Primary, count)
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
        .find(primary.0 as i32)
        .select(encryption_keys::encryption_count)
        .first(conn)
        .await?;
    if let Some(w) = nonce_warning(primary.0 as i32, KeyState::Primary, count) {
        tracing::warn!(data_key_id = primary.0, encryptions = count, "{w}");
    }
    Ok(())
}
