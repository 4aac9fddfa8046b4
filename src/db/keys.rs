//! Data keys in the database: creating the first one, loading and unwrapping
//! the key ring, the passphrase KDF parameters, and the nonce budget.
//! Changes to the set of keys (rotation, retirement, destruction, re-wrapping)
//! live in `lifecycle`; the listener that makes running processes follow them
//! lives in `watcher`.

mod lifecycle;
mod state;
mod status;
mod watcher;

pub use lifecycle::{
    KEYS_CHANNEL, KeyAdminError, Promotion, RewrapReport, destroy_key, promote_new_primary,
    retire_if_empty, rewrap_all,
};
pub use state::KeyState;
pub use status::{KeyStatus, key_status};
pub use watcher::{DEFAULT_KEY_REFRESH, spawn_key_watcher};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;

use crate::crypto::{
    DataKey, DataKeyId, KdfParams, KekId, KeyError, KeyRing, MasterKey, MasterKeys, SharedKeyRing,
    WrappedDataKey,
};

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
    Key(MasterKey),
    /// Derived with Argon2id and the parameters stored in the database.
    Passphrase(SecretString),
}

/// Turns the configured source into the master key. A passphrase needs the
/// stored KDF parameters; on a database with no keys yet, they are created.
pub async fn unlock(
    conn: &mut AsyncPgConnection,
    source: MasterKeySource,
) -> Result<MasterKey, DbError> {
    let passphrase = match source {
        MasterKeySource::Key(key) => return Ok(key),
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
fn check_kek_ids(rows: &[StoredKey], master: &MasterKeys) -> Result<(), KeyError> {
    for row in rows {
        let kek = KekId::from_stored(row.kek_id.clone());
        if master.by_kek_id(&kek).is_none() {
            return Err(KeyError::WrongMasterKey {
                key_id: key_id(row.id).0,
                stored: row.kek_id.clone(),
                ours: master.current().kek_id().to_string(),
            });
        }
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

/// Reserves the next key id and stores a new data key wrapped under the
/// current master key, in the given state. Call inside a transaction holding
/// the keys lock.
pub(crate) async fn create_data_key(
    conn: &mut AsyncPgConnection,
    master: &MasterKey,
    state: KeyState,
) -> Result<DataKeyId, DbError> {
    #[derive(QueryableByName)]
    struct NextId {
        #[diesel(sql_type = Integer)]
        id: i32,
    }
    let next: NextId = diesel::sql_query(
        "SELECT nextval(pg_get_serial_sequence('encryption_keys', 'id'))::integer AS id",
    )
    .get_result(conn)
    .await?;
    let id = key_id(next.id);
    let key = DataKey::generate(id);
    let wrapped = key.wrap(master);
    diesel::insert_into(encryption_keys::table)
        .values((
            encryption_keys::id.eq(next.id),
            encryption_keys::wrapped_key.eq(&wrapped.0),
            encryption_keys::kek_id.eq(master.kek_id().as_str()),
            encryption_keys::state.eq(state.as_str()),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Loads and unwraps every live data key.
pub async fn load_key_ring(
    conn: &mut AsyncPgConnection,
    master: &MasterKeys,
) -> Result<KeyRing, DbError> {
    let rows = live_keys(conn).await?;
    check_kek_ids(&rows, master)?;
    let mut primary = None;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = key_id(row.id);
        if row.state == KeyState::Primary {
            primary = Some(id);
        }
        keys.push(master.unwrap_data_key(
            id,
            &KekId::from_stored(row.kek_id.clone()),
            &WrappedDataKey(row.wrapped_key.clone()),
        )?);
    }
    Ok(KeyRing::new(primary.ok_or(KeyError::NoPrimary)?, keys)?)
}

/// The process's keys: the master keys, the unwrapped ring, and the budget of
/// encryptions reserved in the database.
pub struct Vault {
    master: MasterKeys,
    ring: SharedKeyRing,
    reserved: Mutex<HashMap<DataKeyId, u64>>,
}

impl Vault {
    /// Checks the master key against the stored keys, creates the first data
    /// key on an empty database (exactly one primary, however many processes
    /// start at once), and loads the ring.
    pub async fn open(conn: &mut AsyncPgConnection, master: MasterKeys) -> Result<Self, DbError> {
        let master = conn
            .transaction::<_, DbError, _>(async |conn| {
                lock_keys(conn).await?;
                let rows = live_keys(conn).await?;
                check_kek_ids(&rows, &master)?;
                if rows.is_empty() {
                    let id = create_data_key(conn, master.current(), KeyState::Primary).await?;
                    tracing::info!(data_key_id = id.0, "created the first data key");
                }
                Ok(master)
            })
            .await?;
        let ring = load_key_ring(conn, &master).await?;
        warn_if_over_budget(conn, ring.primary_id()).await?;
        Ok(Self {
            master,
            ring: SharedKeyRing::new(ring),
            reserved: Mutex::new(HashMap::new()),
        })
    }

    pub fn master(&self) -> &MasterKeys {
        &self.master
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.get()
    }

    /// Re-reads the key ring (after a rotation, or on meeting an unknown key id).
    pub async fn reload(&self, conn: &mut AsyncPgConnection) -> Result<Arc<KeyRing>, DbError> {
        let ring = load_key_ring(conn, &self.master).await?;
        self.ring.replace(ring);
        Ok(self.ring.get())
    }

    /// The ring to seal with, after counting `n` encryptions against its
    /// primary key. Counts are reserved in blocks, so most calls touch no row.
    pub async fn reserve(
        &self,
        conn: &mut AsyncPgConnection,
        n: u64,
    ) -> Result<Arc<KeyRing>, DbError> {
        let ring = self.ring();
        let id = ring.primary_id();
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
