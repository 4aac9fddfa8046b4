//! The writes of a session: each in its own transaction with its audit row.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::TryFutureExt;
use serde_json::{Value, json};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{KeyRing, Plaintext, random_hex};

use super::lifecycle::lock_writable;
use super::model::{
    By, Condition, Expected, SealedRow, SessionInput, SessionMeta, SessionPatch, Upserted,
    check_writable,
};
use super::seal::{
    Place, Plain, Replacement, SEALED_FIELDS, Sealed, check_seal_ring, merge, seal_row,
    secret_bytes, slice_bytes,
};
use super::upsert_fast;
use crate::db::activity::{self, ActivityType, AuditContext, Event};
use crate::db::error::DbError;
use crate::db::keys::Vault;
use crate::db::schema::user_sessions;
use crate::domain::validate;

/// Passes of an upsert before it gives up: an insert that loses a race to a
/// concurrent insert of the same user_id returns nothing, and the next pass
/// finds and updates that row.
const UPSERT_ATTEMPTS: usize = 3;

/// Creates the session of `input.user_id`, or updates it. Two concurrent
/// upserts of one `user_id` give one row and no error.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    input: &SessionInput,
) -> Result<Upserted, DbError> {
    upsert_if(conn, vault, ctx, input, Condition::Any, None).await
}

/// `upsert`, only when `condition` holds and `fence` passes (both checked
/// on the locked row, in the write's transaction: `fence::check_update`);
/// otherwise nothing is written.
pub async fn upsert_if(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    input: &SessionInput,
    condition: Condition<'_>,
    fence: Option<i64>,
) -> Result<Upserted, DbError> {
    input.validate()?;
    let mut refused = 0;
    loop {
        match upsert_once(conn, vault, ctx, input, condition, fence).await {
            Err(DbError::StaleKey) if refused < STALE_KEY_RETRIES => {
                refused += 1;
                vault.reload_after_refusal(conn).await?;
            }
            done => return done,
        }
    }
}

/// How often a write refused under a key no longer live (or sealed with a
/// ring older than the one just reloaded) is sealed again with a fresh ring.
const STALE_KEY_RETRIES: u32 = 3;

async fn upsert_once(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    input: &SessionInput,
    condition: Condition<'_>,
    fence: Option<i64>,
) -> Result<Upserted, DbError> {
    // Two round trips and one commit when nothing stands in the way; the
    // locked path below otherwise (it gives the precise refusal).
    if let Some(done) = upsert_fast::try_upsert(conn, vault, ctx, input, condition, fence).await? {
        metrics::counter!("vibee_upserts_total", "path" => "one_statement").increment(1);
        return Ok(done);
    }
    metrics::counter!("vibee_upserts_total", "path" => "locked").increment(1);
    let first_ring = vault.reserve(conn, SEALED_FIELDS).await?;
    conn.transaction::<_, DbError, _>(async |conn| {
        let mut seal_ring = first_ring;
        // An insert that loses a race to a concurrent insert of the same
        // user_id finds nothing to return; the next pass updates that row.
        for attempt in 0..UPSERT_ATTEMPTS {
            // Every pass seals anew: each counts against the nonce budget.
            if attempt > 0 {
                seal_ring = vault.reserve(conn, SEALED_FIELDS).await?;
            }
            let existing = user_sessions::table
                .filter(user_sessions::user_id.eq(&input.user_id))
                .select((SealedRow::as_select(), user_sessions::session_id))
                .for_update()
                .first::<(SealedRow, String)>(conn)
                .await
                .optional()?;
            if let Some((row, stored_session_id)) = existing {
                let expected = match condition {
                    Condition::Absent => {
                        return Err(DbError::PreconditionFailed(
                            "a session for this user_id exists (If-None-Match: * creates only)",
                        ));
                    }
                    Condition::Version(list) => Some(list),
                    Condition::Any => None,
                };
                check_writable(row.is_active, row.version, expected)?;
                super::fence::check_update(conn, vault, &row, input, fence).await?;
                let stored = Stored {
                    row: &row,
                    session_id: &stored_session_id,
                };
                let meta = update_existing(conn, vault, &seal_ring, ctx, input, stored).await?;
                return Ok(Upserted::Updated(meta));
            }
            if let Condition::Version(_) = condition {
                return Err(DbError::PreconditionFailed(
                    "no session for this user_id, and If-Match names a version of one",
                ));
            }
            super::fence::check_create(fence)?;
            if let Some(meta) = insert_new(conn, &seal_ring, input).await? {
                let details = json!({
                    "fields": input.field_names(),
                    "data_key_id": meta.data_key_id,
                });
                let event = Event {
                    kind: ActivityType::SessionCreated,
                    session_id: Some(&meta.session_id),
                    user_id: Some(&meta.user_id),
                    details,
                };
                activity::record(conn, ctx, event).await?;
                return Ok(Upserted::Created(meta));
            }
        }
        Err(DbError::Conflict(
            "the session kept changing under a concurrent writer; retry",
        ))
    })
    .await
}

async fn insert_new(
    conn: &mut AsyncPgConnection,
    ring: &KeyRing,
    input: &SessionInput,
) -> Result<Option<SessionMeta>, DbError> {
    // Random (v4), not time-ordered: the id says nothing about when it was made.
    let id = Uuid::new_v4();
    let session_id = input.session_id.clone().unwrap_or_else(|| random_hex(16));
    let place = Place {
        id,
        user_id: &input.user_id,
        session_id: &session_id,
    };
    let sealed = seal_row(
        ring,
        place,
        &Plain {
            api_hash: secret_bytes(&input.api_hash),
            phone: input.phone.as_ref().map(secret_bytes),
            session_data: input.session_data.as_ref().map(slice_bytes),
        },
    );
    Ok(diesel::insert_into(user_sessions::table)
        .values((
            user_sessions::id.eq(id),
            user_sessions::user_id.eq(&input.user_id),
            user_sessions::session_id.eq(&session_id),
            user_sessions::username.eq(&input.username),
            user_sessions::api_id.eq(input.api_id),
            user_sessions::api_hash_encrypted.eq(&sealed.api_hash),
            user_sessions::phone_encrypted.eq(&sealed.phone),
            user_sessions::session_data_encrypted.eq(&sealed.session_data),
            user_sessions::data_key_id.eq(sealed.data_key_id),
            user_sessions::is_authorized.eq(input.is_authorized.unwrap_or(false)),
            user_sessions::digital_twin_enabled.eq(input.digital_twin_enabled.unwrap_or(false)),
            user_sessions::auto_reply_enabled.eq(input.auto_reply_enabled.unwrap_or(false)),
            user_sessions::target_chats.eq(input.target_chats.clone().unwrap_or_else(|| json!([]))),
        ))
        .on_conflict(user_sessions::user_id)
        .do_nothing()
        .returning(SessionMeta::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// The locked row an upsert updates, and its stored `session_id`.
struct Stored<'a> {
    row: &'a SealedRow,
    session_id: &'a str,
}

/// Re-seals and updates a locked row, and writes its audit row in the same
/// round trip (the two statements are pipelined; the transaction around them
/// still commits both or neither).
async fn update_existing(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    seal_ring: &KeyRing,
    ctx: &AuditContext,
    input: &SessionInput,
    stored: Stored<'_>,
) -> Result<SessionMeta, DbError> {
    let Stored {
        row,
        session_id: stored_session_id,
    } = stored;
    // Every ciphertext of a row is under the row's one data key, so fields
    // not being replaced are re-sealed under the primary too; the ones being
    // replaced are never decrypted.
    let new = Replacement {
        api_hash: Some(secret_bytes(&input.api_hash)),
        phone: input.phone.as_ref().map(|p| Some(secret_bytes(p))),
        session_data: input.session_data.as_ref().map(|d| Some(slice_bytes(d))),
    };
    let plain = merge(conn, vault, row, new).await?;
    // Opening the row may have reloaded the ring (another replica rotated).
    check_seal_ring(vault, seal_ring)?;
    // A changed session_id is a changed lookup key: sealed for the new one.
    let place = Place {
        session_id: input.session_id.as_deref().unwrap_or(&row.session_id),
        ..Place::of(row)
    };
    let sealed = seal_row(seal_ring, place, &plain);
    let optional = OptionalFields {
        session_id: input.session_id.as_deref(),
        username: input.username.as_deref(),
        is_authorized: input.is_authorized,
        digital_twin_enabled: input.digital_twin_enabled,
        auto_reply_enabled: input.auto_reply_enabled,
        target_chats: input.target_chats.as_ref(),
    };
    let event = Event {
        kind: ActivityType::SessionUpdated,
        session_id: Some(input.session_id.as_deref().unwrap_or(stored_session_id)),
        user_id: Some(&input.user_id),
        details: json!({ "fields": input.field_names(), "data_key_id": sealed.data_key_id }),
    };
    let shared: &AsyncPgConnection = conn;
    let (mut for_update, mut for_audit) = (shared, shared);
    let update = diesel::update(user_sessions::table.find(row.id))
        .set((
            optional,
            user_sessions::api_id.eq(input.api_id),
            user_sessions::api_hash_encrypted.eq(&sealed.api_hash),
            user_sessions::phone_encrypted.eq(&sealed.phone),
            user_sessions::session_data_encrypted.eq(&sealed.session_data),
            user_sessions::data_key_id.eq(sealed.data_key_id),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SessionMeta::as_returning())
        .get_result::<SessionMeta>(&mut for_update)
        .map_err(DbError::from);
    let audit = activity::record_pipelined(&mut for_audit, ctx, event);
    // Answers come back in order: a failed UPDATE (say, a session_id taken)
    // is the error reported, not the INSERT it aborted.
    let (meta, ()) = futures_util::future::try_join(update, audit).await?;
    Ok(meta)
}

/// The upsert's optional plain fields: the ones left `None` keep their values.
#[derive(AsChangeset)]
#[diesel(table_name = user_sessions)]
struct OptionalFields<'a> {
    session_id: Option<&'a str>,
    username: Option<&'a str>,
    is_authorized: Option<bool>,
    digital_twin_enabled: Option<bool>,
    auto_reply_enabled: Option<bool>,
    target_chats: Option<&'a Value>,
}

/// Changes non-secret fields of an active session.
pub async fn update_metadata(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    by: By<'_>,
    patch: &SessionPatch,
    expected: Expected<'_>,
) -> Result<SessionMeta, DbError> {
    patch.validate()?;
    conn.transaction::<_, DbError, _>(async |conn| {
        let row = lock_writable(conn, by, expected).await?;
        let meta = diesel::update(user_sessions::table.find(row.id))
            .set((
                patch.clone(),
                user_sessions::version.eq(user_sessions::version + 1),
                user_sessions::updated_at.eq(diesel::dsl::now),
            ))
            .returning(SessionMeta::as_returning())
            .get_result(conn)
            .await?;
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionUpdated,
                session_id: Some(&meta.session_id),
                user_id: Some(&meta.user_id),
                details: json!({ "fields": patch.field_names() }),
            },
        )
        .await?;
        Ok(meta)
    })
    .await
}

/// Replaces the MTProto session blob of an active session. The old blob is
/// never decrypted (a blob that fails its integrity check can be replaced);
/// the other sealed values are, to move the row to the primary key. `data`
/// is the request's buffer, zeroized when dropped.
pub async fn put_session_data(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    session_id: &str,
    data: Zeroizing<Vec<u8>>,
    expected: Expected<'_>,
    fence: Option<i64>,
) -> Result<SessionMeta, DbError> {
    validate::session_data(&data)?;
    let mut refused = 0;
    loop {
        match put_session_data_once(conn, vault, ctx, session_id, &data, expected, fence).await {
            Err(DbError::StaleKey) if refused < STALE_KEY_RETRIES => {
                refused += 1;
                vault.reload_after_refusal(conn).await?;
            }
            done => return done,
        }
    }
}

async fn put_session_data_once(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    session_id: &str,
    data: &Zeroizing<Vec<u8>>,
    expected: Expected<'_>,
    fence: Option<i64>,
) -> Result<SessionMeta, DbError> {
    let bytes = data.len();
    let seal_ring = vault.reserve(conn, SEALED_FIELDS).await?;
    conn.transaction::<_, DbError, _>(async |conn| {
        let row = lock_writable(conn, By::SessionId(session_id), expected).await?;
        // In the write's transaction, the lease row share-locked: the lease
        // cannot change hands between the check and the commit.
        crate::db::leases::check_fence(conn, session_id, fence).await?;
        let new = Replacement {
            // One copy per attempt: an attempt the database refuses (a stale
            // key) is retried with the same bytes.
            session_data: Some(Some(Plaintext::from(data.to_vec()))),
            ..Default::default()
        };
        let plain = merge(conn, vault, &row, new).await?;
        check_seal_ring(vault, &seal_ring)?;
        let sealed = seal_row(&seal_ring, Place::of(&row), &plain);
        let meta = write_sealed(conn, row.id, &sealed).await?;
        let details = json!({
            "bytes": bytes,
            "data_key_id": meta.data_key_id,
        });
        let event = Event {
            kind: ActivityType::SessionDataWritten,
            session_id: Some(session_id),
            user_id: Some(&meta.user_id),
            details,
        };
        activity::record(conn, ctx, event).await?;
        Ok(meta)
    })
    .await
}

async fn write_sealed(
    conn: &mut AsyncPgConnection,
    row_id: Uuid,
    sealed: &Sealed,
) -> Result<SessionMeta, DbError> {
    Ok(diesel::update(user_sessions::table.find(row_id))
        .set((
            user_sessions::api_hash_encrypted.eq(&sealed.api_hash),
            user_sessions::phone_encrypted.eq(&sealed.phone),
            user_sessions::session_data_encrypted.eq(&sealed.session_data),
            user_sessions::data_key_id.eq(sealed.data_key_id),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SessionMeta::as_returning())
        .get_result(conn)
        .await?)
}
