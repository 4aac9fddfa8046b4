//! Fencing of an upsert: an upsert that replaces what a lease holder uses
//! (`api_hash` or `session_data`) must carry the live lease's fence, as
//! `PUT …/data` must (`leases::check_fence`, the one check both use). An
//! upsert that sends the stored values again changes only metadata and
//! needs none.

use diesel_async::AsyncPgConnection;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::model::{SealedRow, SessionInput};
use super::seal::{API_HASH, SESSION_DATA, open_field, ring_for};
use crate::db::error::DbError;
use crate::db::keys::Vault;
use crate::db::leases::check_fence;

/// Checks the fence of an upsert that updates the locked `row`, inside the
/// write's transaction (the lease row stays share-locked until the commit).
/// Only when a live lease is there and no fence came does it open the stored
/// values, to tell a metadata-only upsert from a replacement.
pub(super) async fn check_update(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    row: &SealedRow,
    input: &SessionInput,
    fence: Option<i64>,
) -> Result<(), DbError> {
    match check_fence(conn, &row.session_id, fence).await {
        Err(DbError::LeaseRequired) if !replaces_credentials(conn, vault, row, input).await? => {
            Ok(())
        }
        checked => checked,
    }
}

/// A create has no lease to match: a fence sent with one is stale (the
/// writer's session was purged, or it never held a lease on this one).
pub(super) fn check_create(fence: Option<i64>) -> Result<(), DbError> {
    match fence {
        Some(_) => Err(DbError::StaleFence),
        None => Ok(()),
    }
}

/// Whether the upsert changes the stored `api_hash`, or sends a
/// `session_data` other than the stored one. A stored value that fails its
/// integrity check counts as replaced.
async fn replaces_credentials(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    row: &SealedRow,
    input: &SessionInput,
) -> Result<bool, DbError> {
    let ring = ring_for(conn, vault, row).await?;
    let differs = |column, stored: &[u8], new: &[u8]| match open_field(&ring, row, column, stored) {
        // Constant time: how much of a secret matched shows in no timing.
        Ok(old) => Ok(!bool::from(old.as_slice().ct_eq(new))),
        Err(DbError::Integrity { .. }) => Ok(true),
        Err(e) => Err(e),
    };
    let new_hash = input.api_hash.expose_secret().as_bytes();
    if differs(API_HASH, &row.api_hash_encrypted, new_hash)? {
        return Ok(true);
    }
    match (&input.session_data, &row.session_data_encrypted) {
        (None, _) => Ok(false),
        (Some(_), None) => Ok(true),
        (Some(new), Some(stored)) => differs(SESSION_DATA, stored, new.expose_secret()),
    }
}
