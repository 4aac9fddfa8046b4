//! Sealing and opening a row's secret columns: each bound to its table,
//! column and row id, all of a row under one data key.

use diesel_async::AsyncPgConnection;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::sync::Arc;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{DataKeyId, FieldRef, KeyRing};

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

/// Plaintexts of one row, zeroized on drop.
pub(super) struct Plain {
    pub(super) api_hash: Zeroizing<Vec<u8>>,
    pub(super) phone: Option<Zeroizing<Vec<u8>>>,
    pub(super) session_data: Option<Zeroizing<Vec<u8>>>,
}

pub(super) struct Sealed {
    pub(super) api_hash: Vec<u8>,
    pub(super) phone: Option<Vec<u8>>,
    pub(super) session_data: Option<Vec<u8>>,
    pub(super) data_key_id: i32,
}

pub(super) fn key_column_id(id: DataKeyId) -> i32 {
    i32::try_from(id.0).expect("data key ids come from an integer column")
}

pub(super) fn seal_row(ring: &KeyRing, row_id: Uuid, plain: &Plain) -> Sealed {
    let seal =
        |column, bytes: &[u8]| ring.seal(&FieldRef::new(TABLE, column, row_id.as_bytes()), bytes);
    Sealed {
        api_hash: seal(API_HASH, &plain.api_hash),
        phone: plain.phone.as_ref().map(|p| seal(PHONE, p)),
        session_data: plain.session_data.as_ref().map(|d| seal(SESSION_DATA, d)),
        data_key_id: key_column_id(ring.primary_id()),
    }
}

pub(super) fn open_field(
    ring: &KeyRing,
    row_id: Uuid,
    column: &'static str,
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DbError> {
    let opened = ring.open(&FieldRef::new(TABLE, column, row_id.as_bytes()), stored);
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
    let id = DataKeyId(u32::try_from(row.data_key_id).unwrap_or(0));
    if ring.contains(id) {
        return Ok(ring);
    }
    tracing::info!(
        data_key_id = row.data_key_id,
        "row under a data key not yet loaded; reloading the key ring"
    );
    vault.reload(conn).await
}

pub(super) fn open_row(ring: &KeyRing, row: &SealedRow) -> Result<Plain, DbError> {
    Ok(Plain {
        api_hash: open_field(ring, row.id, API_HASH, &row.api_hash_encrypted)?,
        phone: row
            .phone_encrypted
            .as_deref()
            .map(|p| open_field(ring, row.id, PHONE, p))
            .transpose()?,
        session_data: row
            .session_data_encrypted
            .as_deref()
            .map(|d| open_field(ring, row.id, SESSION_DATA, d))
            .transpose()?,
    })
}

/// New plaintexts for a row's sealed columns: `None` keeps the stored value,
/// `Some(None)` clears a nullable one.
#[derive(Default)]
pub(super) struct Replacement {
    pub(super) api_hash: Option<Zeroizing<Vec<u8>>>,
    pub(super) phone: Option<Option<Zeroizing<Vec<u8>>>>,
    pub(super) session_data: Option<Option<Zeroizing<Vec<u8>>>>,
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
    let open = |column, stored: &[u8]| match &ring {
        Some(ring) => open_field(ring, row.id, column, stored),
        None => unreachable!("a kept value is opened only when a ring was loaded"),
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

pub(super) fn to_string(
    bytes: Zeroizing<Vec<u8>>,
    column: &'static str,
) -> Result<SecretString, DbError> {
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

pub(super) fn secret_bytes(s: &SecretString) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.expose_secret().as_bytes().to_vec())
}

pub(super) fn slice_bytes(s: &SecretSlice<u8>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.expose_secret().to_vec())
}
