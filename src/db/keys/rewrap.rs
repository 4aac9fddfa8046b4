//! Re-wrapping every data key under another master key (`rotate-master`),
//! or under the newest version of the same transit key (`--rewrap`).
//!
//! The unwrapping and wrapping (a secrets engine's `decrypt` and `encrypt`,
//! one batch each) happen before the transaction; the transaction then locks
//! every key row, checks that none changed since it was read, and writes the
//! new wraps — all or none. No transaction ever waits on the engine. Transit's
//! own `rewrap` endpoint is not used: it takes no `associated_data`, and the
//! binding of each wrap to its data key's id must hold across the move.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use crate::crypto::{DataKeyId, KdfParams, KekId, WrappedDataKey};
use crate::db::activity::{self, ActivityType, AuditContext};
use crate::db::schema::{encryption_keys, master_key_kdf};
use crate::kek::{Kek, Keks, Stored};

use super::lifecycle::{KeyAdminError, notify};
use super::{lock_keys, store_kdf_params};

/// What a master key rotation did.
#[derive(Debug, Clone)]
pub struct RewrapReport {
    /// Keys re-wrapped (keys already under the new master key are left alone,
    /// unless every key was asked for).
    pub rewrapped: usize,
    pub total: usize,
    pub new_kek_id: KekId,
    /// For a transit key: the key versions the new wraps were made with.
    pub versions: Vec<u32>,
}

type KeyRow = (DataKeyId, Vec<u8>, String);

async fn all_keys(conn: &mut AsyncPgConnection, lock: bool) -> Result<Vec<KeyRow>, KeyAdminError> {
    let q = encryption_keys::table
        .select((
            encryption_keys::id,
            encryption_keys::wrapped_key,
            encryption_keys::kek_id,
        ))
        .order(encryption_keys::id);
    Ok(if lock {
        q.for_update().load(conn).await?
    } else {
        q.load(conn).await?
    })
}

/// Re-wraps every data key, retired ones included, under `new`; with `all`,
/// also those already under it (fresh wraps under a transit key's newest
/// version). No row of `user_sessions` is touched: the data keys themselves
/// do not change, only their wrapping.
///
/// `kdf` is the Argon2 parameters `new` was derived with (passphrase path);
/// `None` means `new` is a key, and stale passphrase parameters are removed so
/// that no later start can derive a master key that wraps nothing. With
/// `all` (the same master key) the stored parameters are left as they are.
pub async fn rewrap_all(
    conn: &mut AsyncPgConnection,
    master: &Keks,
    new: &Kek,
    kdf: Option<&KdfParams>,
    all: bool,
    ctx: &AuditContext,
) -> Result<RewrapReport, KeyAdminError> {
    let rows = all_keys(conn, false).await?;
    let todo: Vec<&KeyRow> = rows
        .iter()
        .filter(|(_, _, kek)| all || kek != new.kek_id().as_str())
        .collect();
    let kek_ids: Vec<KekId> = todo
        .iter()
        .map(|(_, _, k)| KekId::from_stored(k.clone()))
        .collect();
    let stored: Vec<Stored<'_>> = todo
        .iter()
        .zip(&kek_ids)
        .map(|((id, w, _), k)| Stored {
            id: *id,
            kek_id: k,
            wrapped: w,
        })
        .collect();
    let keys = master.unwrap_all(&stored).await?;
    let fresh: Vec<WrappedDataKey> = new.wrap(keys).await?.into_iter().map(|(_, w)| w).collect();
    let versions: Vec<u32> = fresh
        .iter()
        .filter_map(|w| crate::transit::wrap_version(&w.0))
        .collect();

    conn.transaction::<_, KeyAdminError, _>(async |conn| {
        lock_keys(conn).await?;
        let now = all_keys(conn, true).await?;
        // The keys must be as they were read: a key added or re-wrapped
        // meanwhile would otherwise stay under the old master key.
        let expected: Vec<&KeyRow> = rows.iter().collect();
        if now.iter().collect::<Vec<_>>() != expected {
            return Err(KeyAdminError::Changed);
        }
        let mut from = Vec::new();
        for ((id, _, kek), wrapped) in todo.iter().zip(&fresh) {
            diesel::update(encryption_keys::table.find(*id))
                .set((
                    encryption_keys::wrapped_key.eq(&wrapped.0),
                    encryption_keys::kek_id.eq(new.kek_id().as_str()),
                    encryption_keys::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            if !from.contains(kek) {
                from.push(kek.clone());
            }
        }
        // Re-wrapping under the same master key (`all`) keeps its parameters.
        match kdf {
            _ if all => {}
            Some(params) => store_kdf_params(conn, params).await?,
            None => {
                diesel::delete(master_key_kdf::table).execute(conn).await?;
            }
        }
        // KEK ids are public fingerprints (shown by `keys status`), not secrets.
        activity::record_unscoped_event(
            conn,
            ctx,
            ActivityType::MasterKeyRotated,
            json!({
                "keys_rewrapped": todo.len(),
                "keys_total": rows.len(),
                "from_kek_ids": from,
                "to_kek_id": new.kek_id().as_str(),
                "to_kind": new.kind(),
                "transit_key_versions": versions,
                "passphrase": kdf.is_some(),
            }),
        )
        .await?;
        notify(conn, &format!("master {}", new.kek_id())).await?;
        Ok(())
    })
    .await?;
    let mut versions = versions;
    versions.sort_unstable();
    versions.dedup();
    Ok(RewrapReport {
        rewrapped: todo.len(),
        total: rows.len(),
        new_kek_id: new.kek_id().clone(),
        versions,
    })
}
