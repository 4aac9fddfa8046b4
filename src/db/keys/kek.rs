//! The master key side of the data keys: reaching a transit master key,
//! wrapping a new data key before the transaction that stores it, and
//! unwrapping the ring in one batch per master key.

use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::crypto::{DataKey, DataKeyId, KekId, KeyError, KeyRing, WrappedDataKey};
use crate::db::error::DbError;
use crate::db::schema::encryption_keys;
use crate::kek::{Kek, Keks, Stored};
use crate::transit::{Transit, TransitSettings};

use super::{KeyState, MasterKeySource, StoredKey, check_kek_ids, unlock};

/// Turns the configured source into the master key: a transit key is
/// reached and authenticated to, a local one read or derived (`unlock`).
pub async fn unlock_kek(
    conn: &mut AsyncPgConnection,
    source: MasterKeySource,
) -> Result<Kek, DbError> {
    match source {
        MasterKeySource::Transit(settings) => Ok(Kek::Transit(connect_transit(settings).await?)),
        local => Ok(Kek::Local(unlock(conn, local).await?)),
    }
}

/// Reaches the engine and authenticates, so a bad token or an engine that is
/// down stops the start with a message that says so.
pub async fn connect_transit(settings: TransitSettings) -> Result<Arc<Transit>, DbError> {
    let transit = Arc::new(
        Transit::new(settings).map_err(|e| DbError::Key(KeyError::MasterKeyUnavailable(e.0)))?,
    );
    let t = transit.clone();
    tokio::task::spawn_blocking(move || t.connect())
        .await
        .map_err(|e| DbError::Internal(format!("the secrets engine call did not finish: {e}")))?
        .map_err(|e| DbError::Key(KeyError::MasterKeyUnavailable(e.0)))?;
    Ok(transit)
}

/// A new data key, its id reserved and its wrap made, ready to insert. Made
/// before the transaction that stores it, so no transaction waits on the
/// secrets engine (a sequence value left unused is only a gap).
pub(crate) struct NewDataKey {
    id: DataKeyId,
    wrapped: WrappedDataKey,
    kek_id: KekId,
}

pub(crate) async fn prepare_data_key(
    conn: &mut AsyncPgConnection,
    master: &Kek,
) -> Result<NewDataKey, DbError> {
    #[derive(QueryableByName)]
    struct NextId {
        #[diesel(sql_type = Integer)]
        id: DataKeyId,
    }
    let next: NextId = diesel::sql_query(
        "SELECT nextval(pg_get_serial_sequence('encryption_keys', 'id'))::integer AS id",
    )
    .get_result(conn)
    .await?;
    let id = next.id;
    let (_, wrapped) = master
        .wrap(vec![DataKey::generate(id)])
        .await?
        .pop()
        .expect("one key in, one wrap out");
    Ok(NewDataKey {
        id,
        wrapped,
        kek_id: master.kek_id().clone(),
    })
}

/// Stores a prepared data key in the given state. Call inside a transaction
/// holding the keys lock.
pub(crate) async fn insert_data_key(
    conn: &mut AsyncPgConnection,
    key: &NewDataKey,
    state: KeyState,
) -> Result<DataKeyId, DbError> {
    diesel::insert_into(encryption_keys::table)
        .values((
            encryption_keys::id.eq(key.id),
            encryption_keys::wrapped_key.eq(&key.wrapped.0),
            encryption_keys::kek_id.eq(key.kek_id.as_str()),
            encryption_keys::state.eq(state),
        ))
        .execute(conn)
        .await?;
    Ok(key.id)
}

/// Unwraps the live keys: one batch call per master key, never one per key.
pub(super) async fn unwrap_ring(rows: &[StoredKey], master: &Keks) -> Result<KeyRing, KeyError> {
    check_kek_ids(rows, master)?;
    let primary = rows
        .iter()
        .find(|r| r.state == KeyState::Primary)
        .map(|r| r.id)
        .ok_or(KeyError::NoPrimary)?;
    let kek_ids: Vec<KekId> = rows
        .iter()
        .map(|r| KekId::from_stored(r.kek_id.clone()))
        .collect();
    let stored: Vec<Stored<'_>> = rows
        .iter()
        .zip(&kek_ids)
        .map(|(r, k)| Stored {
            id: r.id,
            kek_id: k,
            wrapped: &r.wrapped_key,
        })
        .collect();
    KeyRing::new(primary, master.unwrap_all(&stored).await?)
}

/// What a ring was unwrapped from: when a reload finds the same rows, the
/// ring in memory is kept and nothing is unwrapped (no call to a secrets
/// engine every refresh interval).
pub(super) fn rows_digest(rows: &[StoredKey]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in rows {
        h.update(r.id.0.to_be_bytes());
        h.update(r.state.as_str().as_bytes());
        h.update([0]);
        h.update(r.kek_id.as_bytes());
        h.update([0]);
        h.update((r.wrapped_key.len() as u64).to_be_bytes());
        h.update(&r.wrapped_key);
    }
    h.finalize().into()
}
