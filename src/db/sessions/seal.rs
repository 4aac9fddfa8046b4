//! Sealing and opening a row's secret columns: each bound to its table,
//! column, row id and lookup keys (`user_id`, `session_id`), all of a row
//! under one data key.

use crate::crypto::{DataKeyId, DecryptError, FieldRef, KeyRing, Plaintext, peek_data_key_id};
use diesel_async::AsyncPgConnection;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::sync::Arc;
use uuid::Uuid;

use super::model::*;
use crate::db::error::DbError;
use crate::db::keys::Vault;

pub const TABLE: &str = "user_sessions";
pub(super) const API_HASH: &str = "api_hash_encrypted";
pub(super) const PHONE: &str = "phone_encrypted";
pub(super) const SESSION_DATA: &str = "session_data_encrypted";

/// The sealed columns of a row: api_hash, phone and session_data. Each
/// write of a row seals all of them, so each counts against the nonce
/// budget of the key it is sealed under.
pub(super) const SEALED_FIELDS: u64 = 3;

/// Plaintexts of one row, wiped on drop.
pub(super) struct Plain {
    pub(super) api_hash: Plaintext,
    pub(super) phone: Option<Plaintext>,
    pub(super) session_data: Option<Plaintext>,
}

pub(super) struct Sealed {
    pub(super) api_hash: Vec<u8>,
    pub(super) phone: Option<Vec<u8>>,
    pub(super) session_data: Option<Vec<u8>>,
    pub(super) data_key_id: DataKeyId,
}

/// Where a row's values live and what finds them: the row id and its lookup
/// keys, all bound into the associated data, so a value moved to another row,
/// or left in a row whose `user_id` or `session_id` was changed by hand, fails.
#[derive(Clone, Copy)]
pub(super) struct Place<'a> {
    pub(super) id: Uuid,
    pub(super) user_id: &'a str,
    pub(super) session_id: &'a str,
}

impl<'a> Place<'a> {
    pub(super) fn of(row: &'a SealedRow) -> Self {
        Self {
            id: row.id,
            user_id: &row.user_id,
            session_id: &row.session_id,
        }
    }

    fn field(&self, column: &'static str) -> FieldRef<'_> {
        FieldRef::new(TABLE, column, self.id.as_bytes())
            .looked_up_by(self.user_id.as_bytes(), self.session_id.as_bytes())
    }
}

pub(super) fn seal_row(ring: &KeyRing, place: Place<'_>, plain: &Plain) -> Sealed {
    let seal = |column, bytes: &[u8]| {
        metrics::counter!("vibee_encryptions_total").increment(1);
        ring.seal(&place.field(column), bytes)
    };
    Sealed {
        api_hash: seal(API_HASH, &plain.api_hash),
        phone: plain.phone.as_ref().map(|p| seal(PHONE, p)),
        session_data: plain.session_data.as_ref().map(|d| seal(SESSION_DATA, d)),
        data_key_id: ring.primary_id(),
    }
}

/// Opens one value of `row`. The key its header names must be the row's
/// `data_key_id`: rotation trusts that column to find what to move, so a
/// value under another key would be left behind and its key retired.
pub(super) fn open_field(
    ring: &KeyRing,
    row: &SealedRow,
    column: &'static str,
    stored: &[u8],
) -> Result<Plaintext, DbError> {
    let row_id = row.id;
    let labelled = peek_data_key_id(stored) == Some(row.data_key_id);
    let opened = if labelled {
        ring.open(&Place::of(row).field(column), stored)
    } else {
        Err(DecryptError)
    };
    metrics::counter!("vibee_decryptions_total").increment(1);
    opened.map_err(|_| {
        metrics::counter!("vibee_integrity_failures_total").increment(1);
        // Where, never what: the value itself stays out of the log.
        tracing::error!(
            table = TABLE,
            column,
            row_id = %row_id,
            "stored value failed to decrypt: integrity error"
        );
        DbError::Integrity {
            table: TABLE,
            column,
        }
    })
}

/// A ring that holds the row's key, reloading once when the row names a key
/// this process has not loaded yet (another replica rotated).
pub(super) async fn ring_for(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    row: &SealedRow,
) -> Result<Arc<KeyRing>, DbError> {
    let ring = vault.ring();
    let id = row.data_key_id;
    if ring.contains(id) {
        return Ok(ring);
    }
    tracing::info!(
        data_key_id = id.0,
        "row under a data key not yet loaded; reloading the key ring"
    );
    // A key this process cannot unwrap (the keys moved to a master key it
    // does not hold) is a stale ring, not a broken request: 503.
    vault.reload(conn).await.map_err(|e| match e {
        DbError::Key(k) => DbError::KeyRingStale(format!("cannot load data key {id}: {k}")),
        other => other,
    })
}

/// The seal ring must be the ring in force: when opening the row made the
/// process reload (another replica rotated), the write starts over with the
/// reloaded ring, never with the one reserved before the reload.
pub(super) fn check_seal_ring(vault: &Vault, seal_ring: &KeyRing) -> Result<(), DbError> {
    if vault.ring().primary_id() != seal_ring.primary_id() {
        return Err(DbError::StaleKey);
    }
    Ok(())
}

pub(super) fn open_row(ring: &KeyRing, row: &SealedRow) -> Result<Plain, DbError> {
    Ok(Plain {
        api_hash: open_field(ring, row, API_HASH, &row.api_hash_encrypted)?,
        phone: row
            .phone_encrypted
            .as_deref()
            .map(|p| open_field(ring, row, PHONE, p))
            .transpose()?,
        session_data: row
            .session_data_encrypted
            .as_deref()
            .map(|d| open_field(ring, row, SESSION_DATA, d))
            .transpose()?,
    })
}

/// New plaintexts for a row's sealed columns: `None` keeps the stored value,
/// `Some(None)` clears a nullable one.
#[derive(Default)]
pub(super) struct Replacement {
    pub(super) api_hash: Option<Plaintext>,
    pub(super) phone: Option<Option<Plaintext>>,
    pub(super) session_data: Option<Option<Plaintext>>,
}

/// The row's plaintexts after `new` is applied. Only the values kept are
/// decrypted: a write that replaces a value that fails its integrity check
/// (or replaces every value) never needs to read it, so it is how such a row
/// is repaired.
pub(super) async fn merge(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    row: &SealedRow,
    new: Replacement,
) -> Result<Plain, DbError> {
    let opens = new.api_hash.is_none()
        || (new.phone.is_none() && row.phone_encrypted.is_some())
        || (new.session_data.is_none() && row.session_data_encrypted.is_some());
    let ring = if opens {
        Some(ring_for(conn, vault, row).await?)
    } else {
        None
    };
    // `opens` said which values are kept; a kept value without a ring would
    // be a bug here, answered as an integrity error rather than a panic.
    let open = |column, stored: &[u8]| match &ring {
        Some(ring) => open_field(ring, row, column, stored),
        None => Err(DbError::Integrity {
            table: TABLE,
            column,
        }),
    };
    Ok(Plain {
        api_hash: match new.api_hash {
            Some(v) => v,
            None => open(API_HASH, &row.api_hash_encrypted)?,
        },
        phone: match new.phone {
            Some(v) => v,
            None => row
                .phone_encrypted
                .as_deref()
                .map(|p| open(PHONE, p))
                .transpose()?,
        },
        session_data: match new.session_data {
            Some(v) => v,
            None => row
                .session_data_encrypted
                .as_deref()
                .map(|d| open(SESSION_DATA, d))
                .transpose()?,
        },
    })
}

pub(super) fn to_string(bytes: Plaintext, column: &'static str) -> Result<SecretString, DbError> {
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| DbError::Integrity {
        table: TABLE,
        column,
    })?;
    Ok(SecretString::from(text))
}

pub(super) fn credentials(plain: Plain) -> Result<Credentials, DbError> {
    Ok(Credentials {
        api_hash: to_string(plain.api_hash, API_HASH)?,
        phone: plain.phone.map(|p| to_string(p, PHONE)).transpose()?,
        session_data: plain.session_data.map(|d| SecretSlice::from(d.to_vec())),
    })
}

pub(super) fn secret_bytes(s: &SecretString) -> Plaintext {
    Plaintext::from(s.expose_secret().as_bytes().to_vec())
}

pub(super) fn slice_bytes(s: &SecretSlice<u8>) -> Plaintext {
    Plaintext::from(s.expose_secret().to_vec())
}
