//! The rotation's step: moving rows onto the primary data key.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::crypto::DataKeyId;

use super::model::SealedRow;
use super::seal::{Place, SEALED_FIELDS, open_row, ring_for, seal_row};
use crate::db::error::DbError;
use crate::db::keys::Vault;
use crate::db::schema::user_sessions;

/// Re-encrypts up to `batch_size` rows that are not on the primary data key,
/// in one short transaction (a rotation step). Returns how many it moved.
///
/// The rows are locked `FOR UPDATE SKIP LOCKED`: a row a writer holds is left
/// to that writer (which re-seals the whole row under the primary itself) or
/// to a later batch, and two rotation processes never take the same row.
/// Every secret column of a row moves together, with `data_key_id`, so a row's
/// ciphertexts are always under the key its `data_key_id` names, at every
/// instant and whatever is killed when.
///
/// Rotation is not a user write: `version` and `updated_at` stay as they are.
/// The plaintext is unchanged, a client's optimistic-concurrency check must
/// not fail because of it, and `updated_at` keeps meaning "last changed by a
/// user". Nothing is audited per row; the rotation audits itself.
pub async fn reseal_batch(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    batch_size: u32,
) -> Result<usize, DbError> {
    use diesel::sql_types::{Array, Bytea, Nullable};
    let limit = i64::from(batch_size.max(1));
    // Every sealed field of a row counts against the new key's nonce budget.
    let seal_ring = vault.reserve(conn, SEALED_FIELDS * limit as u64).await?;
    let primary = seal_ring.primary_id();
    conn.transaction::<_, DbError, _>(async |conn| {
        // `<` or `>` rather than `<>`: two ranges of the data_key_id index,
        // so a batch visits only rows still to move. (`<> ... ORDER BY id`
        // walked the primary key past every row already moved: each batch
        // got slower as the rotation went on.)
        let rows: Vec<SealedRow> = user_sessions::table
            .filter(
                user_sessions::data_key_id
                    .lt(primary)
                    .or(user_sessions::data_key_id.gt(primary)),
            )
            .limit(limit)
            .select(SealedRow::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut api_hashes = Vec::with_capacity(rows.len());
        let mut phones = Vec::with_capacity(rows.len());
        let mut blobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let open_ring = ring_for(conn, vault, row).await?;
            let sealed = seal_row(&seal_ring, Place::of(row), &open_row(&open_ring, row)?);
            ids.push(row.id);
            api_hashes.push(sealed.api_hash);
            phones.push(sealed.phone);
            blobs.push(sealed.session_data);
        }
        // One statement for the batch: a round trip per row would dominate.
        diesel::sql_query(
            "UPDATE user_sessions AS s \
             SET api_hash_encrypted = v.api_hash, phone_encrypted = v.phone, \
                 session_data_encrypted = v.session_data, data_key_id = $5 \
             FROM unnest($1, $2, $3, $4) AS v(id, api_hash, phone, session_data) \
             WHERE s.id = v.id",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .bind::<Array<Bytea>, _>(&api_hashes)
        .bind::<Array<Nullable<Bytea>>, _>(&phones)
        .bind::<Array<Nullable<Bytea>>, _>(&blobs)
        .bind::<diesel::sql_types::Integer, _>(primary)
        .execute(conn)
        .await?;
        Ok(rows.len())
    })
    .await
}

/// How many rows are not yet on the primary key `primary`.
pub async fn rows_not_on(conn: &mut AsyncPgConnection, primary: DataKeyId) -> Result<i64, DbError> {
    Ok(user_sessions::table
        .filter(user_sessions::data_key_id.ne(primary))
        .count()
        .get_result(conn)
        .await?)
}
