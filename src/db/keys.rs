//! Data keys in the database: creating the first one, loading and unwrapping
//! the key ring, the passphrase KDF parameters, and the nonce budget's
//! warning. The process's keys and its reserved budget are `vault`'s.
//! Changes to the set of keys (rotation, retirement, destruction, re-wrapping)
//! live in `lifecycle`; the listener that makes running processes follow them
//! lives in `watcher`.

mod kek;
mod key_id;
mod lifecycle;
mod rewrap;
mod state;
mod status;
mod vault;
mod watcher;

use kek::unwrap_ring;
pub use kek::{connect_transit, unlock_kek};
pub(crate) use kek::{insert_data_key, prepare_data_key};
pub use lifecycle::{
    KEYS_CHANNEL, KeyAdminError, Promotion, destroy_key, promote_new_primary, retire_if_empty,
};
pub use rewrap::{RewrapReport, rewrap_all};
pub use state::KeyState;
pub use status::{KeyStatus, key_status};
pub use vault::{STALE_AFTER_PERIODS, Vault};
pub use watcher::{DEFAULT_KEY_REFRESH, spawn_key_watcher, spawn_pool_refresh};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;

use crate::crypto::{DataKeyId, KdfParams, KekId, KeyError, KeyRing};
use crate::kek::Keks;
use crate::transit::TransitSettings;

use super::error::DbError;
use super::schema::{encryption_keys, master_key_kdf};

/// Advisory lock key serialising changes to the set of data keys ("vibee-ky").
pub(crate) const KEYS_LOCK: i64 = 0x7669_6265_652d_6b79;

/// Encryptions under one key past which we warn: a quarter of the 2^32 that
/// NIST SP 800-38D allows for random 96-bit nonces, so there is ample time to
/// rotate before the limit.
pub const NONCE_WARN_AT: i64 = 1 << 30;

/// The nonce-budget warning for a key that encrypts (the primary), if due.
pub fn nonce_warning(id: DataKeyId, state: KeyState, encryptions: i64) -> Option<String> {
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
    id: DataKeyId,
    wrapped_key: Vec<u8>,
    kek_id: String,
    state: KeyState,
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
        master.check(row.id, &KekId::from_stored(row.kek_id.clone()))?;
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
