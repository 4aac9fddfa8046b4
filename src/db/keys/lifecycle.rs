//! Changes to the set of data keys: a new primary, retirement, destruction and
//! re-wrapping under a new master key. Each is one transaction under the keys
//! advisory lock, writes its audit row in that transaction, and announces
//! itself on `vibee_keys` (PostgreSQL delivers a NOTIFY only at commit, so a
//! rolled-back change is never announced).

use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use crate::crypto::{DataKeyId, KdfParams, KekId, KeyError, MasterKey, MasterKeys, WrappedDataKey};
use crate::db::activity::{self, ActivityType, AuditContext};
use crate::db::error::DbError;
use crate::db::schema::{encryption_keys, master_key_kdf};

use super::{KeyState, create_data_key, key_id, lock_keys, store_kdf_params};

/// The channel on which key changes are announced; the payload says what
/// changed (for logs only: listeners reload the whole ring).
pub const KEYS_CHANNEL: &str = "vibee_keys";

/// Why a key change was refused. Messages name the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("there is no data key {0}")]
    NoSuchKey(i32),
    #[error(
        "data key {id} is {state}; only a retired key can be destroyed \
         (rotate with `vibee-sessions rotate` first: it retires keys no row uses)"
    )]
    NotRetired { id: i32, state: KeyState },
    #[error("data key {id} is still used by {rows} session row(s); it cannot be destroyed")]
    StillReferenced { id: i32, rows: i64 },
    #[error("the database has no primary data key; start the service once to create it")]
    NoPrimary,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for KeyAdminError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl From<KeyError> for KeyAdminError {
    fn from(e: KeyError) -> Self {
        Self::Db(e.into())
    }
}

/// Announces a key change to every listening process (delivered at commit).
pub(crate) async fn notify(conn: &mut AsyncPgConnection, payload: &str) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(KEYS_CHANNEL)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a rotation's first step did.
#[derive(Debug, Clone, Copy)]
pub struct Promotion {
    pub new_primary: DataKeyId,
    pub previous: DataKeyId,
}

/// Creates a new data key and makes it primary; the old primary turns
/// `active` (it still opens the rows not yet re-encrypted).
pub async fn promote_new_primary(
    conn: &mut AsyncPgConnection,
    master: &MasterKey,
    ctx: &AuditContext,
) -> Result<Promotion, KeyAdminError> {
    conn.transaction::<_, KeyAdminError, _>(async |conn| {
        lock_keys(conn).await?;
        // Demote first: the unique index allows one primary at any instant.
        let previous: i32 = diesel::update(
            encryption_keys::table.filter(encryption_keys::state.eq(KeyState::Primary)),
        )
        .set((
            encryption_keys::state.eq(KeyState::Active),
            encryption_keys::updated_at.eq(diesel::dsl::now),
        ))
        .returning(encryption_keys::id)
        .get_result(conn)
        .await
        .optional()?
        .ok_or(KeyAdminError::NoPrimary)?;
        let new_primary = create_data_key(conn, master, KeyState::Primary).await?;
        activity::record_key_event(
            conn,
            ctx,
            ActivityType::KeyRotationStarted,
            json!({ "new_primary": new_primary.0, "previous_primary": previous }),
        )
        .await?;
        notify(conn, &format!("primary {}", new_primary.0)).await?;
        Ok(Promotion {
            new_primary,
            previous: key_id(previous),
        })
    })
    .await
}

/// Retires `id` if it is `active` and no row uses it; `Ok(false)` otherwise.
///
/// Locking the key row `FOR UPDATE` first waits for every writer still in
/// flight that is inserting or re-pointing a row at this key (the foreign key
/// check holds a `KEY SHARE` lock on it until that writer commits); the
/// emptiness check that follows is a new statement, so under READ COMMITTED it
/// sees those writes. A row that lands under the key before this commits
/// keeps it `active`.
pub async fn retire_if_empty(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    id: DataKeyId,
) -> Result<bool, KeyAdminError> {
    let id = id.0 as i32;
    conn.transaction::<_, KeyAdminError, _>(async |conn| {
        lock_keys(conn).await?;
        let state: Option<KeyState> = encryption_keys::table
            .find(id)
            .select(encryption_keys::state)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if state != Some(KeyState::Active) {
            return Ok(false);
        }
        if key_in_use(conn, id).await? {
            return Ok(false);
        }
        diesel::update(encryption_keys::table.find(id))
            .set((
                encryption_keys::state.eq(KeyState::Retired),
                encryption_keys::retired_at.eq(diesel::dsl::now),
                encryption_keys::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        activity::record_key_event(conn, ctx, ActivityType::KeyRetired, json!({ "key_id": id }))
            .await?;
        notify(conn, &format!("retired {id}")).await?;
        Ok(true)
    })
    .await
}

async fn key_in_use(conn: &mut AsyncPgConnection, id: i32) -> Result<bool, DbError> {
    #[derive(QueryableByName)]
    struct InUse {
        #[diesel(sql_type = Bool)]
        used: bool,
    }
    let r: InUse = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM user_sessions WHERE data_key_id = $1) AS used",
    )
    .bind::<Integer, _>(id)
    .get_result(conn)
    .await?;
    Ok(r.used)
}

async fn rows_under(conn: &mut AsyncPgConnection, id: i32) -> Result<i64, DbError> {
    use crate::db::schema::user_sessions;
    Ok(user_sessions::table
        .filter(user_sessions::data_key_id.eq(id))
        .count()
        .get_result(conn)
        .await?)
}

/// Deletes a retired data key for good: what it sealed can never be read
/// again, so it must seal nothing any more. The foreign key from
/// `user_sessions.data_key_id` refuses it too; we check first to say why.
pub async fn destroy_key(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    id: i32,
) -> Result<(), KeyAdminError> {
    conn.transaction::<_, KeyAdminError, _>(async |conn| {
        lock_keys(conn).await?;
        let state: KeyState = encryption_keys::table
            .find(id)
            .select(encryption_keys::state)
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or(KeyAdminError::NoSuchKey(id))?;
        if state != KeyState::Retired {
            return Err(KeyAdminError::NotRetired { id, state });
        }
        let rows = rows_under(conn, id).await?;
        if rows > 0 {
            return Err(KeyAdminError::StillReferenced { id, rows });
        }
        diesel::delete(encryption_keys::table.find(id))
            .execute(conn)
            .await?;
        activity::record_key_event(
            conn,
            ctx,
            ActivityType::KeyDestroyed,
            json!({ "key_id": id }),
        )
        .await?;
        notify(conn, &format!("destroyed {id}")).await?;
        Ok(())
    })
    .await
}

/// What a master key rotation did.
#[derive(Debug, Clone)]
pub struct RewrapReport {
    /// Keys re-wrapped (keys already under the new master key are left alone).
    pub rewrapped: usize,
    pub total: usize,
    pub new_kek_id: KekId,
}

/// Re-wraps every data key, retired ones included, under `new`, in one
/// transaction under the keys lock. No row of `user_sessions` is touched: the
/// data keys themselves do not change, only their wrapping.
///
/// `kdf` is the Argon2 parameters `new` was derived with (passphrase path);
/// `None` means `new` is a key, and stale passphrase parameters are removed so
/// that no later start can derive a master key that wraps nothing.
pub async fn rewrap_all(
    conn: &mut AsyncPgConnection,
    master: &MasterKeys,
    new: &MasterKey,
    kdf: Option<&KdfParams>,
    ctx: &AuditContext,
) -> Result<RewrapReport, KeyAdminError> {
    conn.transaction::<_, KeyAdminError, _>(async |conn| {
        lock_keys(conn).await?;
        let rows: Vec<(i32, Vec<u8>, String)> = encryption_keys::table
            .select((
                encryption_keys::id,
                encryption_keys::wrapped_key,
                encryption_keys::kek_id,
            ))
            .order(encryption_keys::id)
            .for_update()
            .load(conn)
            .await?;
        let mut from = Vec::new();
        let mut rewrapped = 0;
        for (id, wrapped, kek) in &rows {
            if kek == new.kek_id().as_str() {
                continue;
            }
            let fresh = master.rewrap_data_key(
                key_id(*id),
                &KekId::from_stored(kek.clone()),
                &WrappedDataKey(wrapped.clone()),
                new,
            )?;
            diesel::update(encryption_keys::table.find(*id))
                .set((
                    encryption_keys::wrapped_key.eq(&fresh.0),
                    encryption_keys::kek_id.eq(new.kek_id().as_str()),
                    encryption_keys::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            if !from.contains(kek) {
                from.push(kek.clone());
            }
            rewrapped += 1;
        }
        match kdf {
            Some(params) => store_kdf_params(conn, params).await?,
            None => {
                diesel::delete(master_key_kdf::table).execute(conn).await?;
            }
        }
        // KEK ids are public fingerprints (shown by `keys status`), not secrets.
        activity::record_key_event(
            conn,
            ctx,
            ActivityType::MasterKeyRotated,
            json!({
                "keys_rewrapped": rewrapped,
                "keys_total": rows.len(),
                "from_kek_ids": from,
                "to_kek_id": new.kek_id().as_str(),
                "passphrase": kdf.is_some(),
            }),
        )
        .await?;
        notify(conn, &format!("master {}", new.kek_id())).await?;
        Ok(RewrapReport {
            rewrapped,
            total: rows.len(),
            new_kek_id: new.kek_id().clone(),
        })
    })
    .await
}
