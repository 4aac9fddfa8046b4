//! Changes to the set of data keys: a new primary, retirement, destruction and
//! re-wrapping under a new master key. Each is one transaction under the keys
//! advisory lock, writes its audit row in that transaction, and announces
//! itself on `vibee_keys` (PostgreSQL delivers a NOTIFY only at commit, so a
//! rolled-back change is never announced).

use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;

use crate::crypto::{DataKeyId, KeyError};
use crate::db::activity::{self, ActivityType, AuditContext};
use crate::db::error::DbError;
use crate::db::schema::encryption_keys;
use crate::kek::Kek;

use super::{KeyState, insert_data_key, lock_keys, prepare_data_key};

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
    #[error(
        "the data keys changed while they were being re-wrapped (a rotation ran meanwhile?); \
         nothing was changed: run rotate-master again"
    )]
    Changed,
    #[error(
        "data key {key_id} is wrapped under master key {live}, but the configured master key \
         is {ours}: a new primary under it would leave the live keys under two master keys, \
         and replicas that hold only one could not load them. Finish the master key rotation \
         first (vibee-sessions rotate-master), then rotate"
    )]
    MixedMasterKeys {
        key_id: DataKeyId,
        live: String,
        ours: String,
    },
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
    master: &Kek,
    ctx: &AuditContext,
) -> Result<Promotion, KeyAdminError> {
    // Wrapped before the transaction: a secrets engine call never holds the keys lock.
    let new_key = prepare_data_key(conn, master).await?;
    conn.transaction::<_, KeyAdminError, _>(async |conn| {
        lock_keys(conn).await?;
        // Every live key is under one master key: the new one must be too.
        let live: Vec<(DataKeyId, String)> = encryption_keys::table
            .filter(encryption_keys::state.ne(KeyState::Retired.as_str()))
            .select((encryption_keys::id, encryption_keys::kek_id))
            .order(encryption_keys::id)
            .load(conn)
            .await?;
        if let Some((key_id, kek)) = live
            .into_iter()
            .find(|(_, k)| k != master.kek_id().as_str())
        {
            return Err(KeyAdminError::MixedMasterKeys {
                key_id,
                live: kek,
                ours: master.kek_id().to_string(),
            });
        }
        // Demote first: the unique index allows one primary at any instant.
        let previous: DataKeyId = diesel::update(
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
        let new_primary = insert_data_key(conn, &new_key, KeyState::Primary).await?;
        activity::record_unscoped_event(
            conn,
            ctx,
            ActivityType::KeyRotationStarted,
            json!({ "new_primary": new_primary, "previous_primary": previous }),
        )
        .await?;
        notify(conn, &format!("primary {}", new_primary.0)).await?;
        Ok(Promotion {
            new_primary,
            previous,
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
        activity::record_unscoped_event(
            conn,
            ctx,
            ActivityType::KeyRetired,
            json!({ "key_id": id }),
        )
        .await?;
        notify(conn, &format!("retired {id}")).await?;
        Ok(true)
    })
    .await
}

async fn key_in_use(conn: &mut AsyncPgConnection, id: DataKeyId) -> Result<bool, DbError> {
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
        activity::record_unscoped_event(
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
