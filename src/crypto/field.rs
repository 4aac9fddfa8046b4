//! The stored form of an encrypted field:
//! `version ‖ data key id (4, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
//!
//! The associated data binds a value to its place (table, column, row id),
//! from version 2 on also to the keys the row is looked up by (its
//! `user_id` and `session_id`), and to its own header, so a value copied
//! elsewhere, left in a row whose lookup keys were changed, or relabelled
//! with another key id or version, fails to open. Version 1 values (row id
//! only) still open; everything is sealed as version 2.

use zeroize::Zeroizing;

use super::aead::{NONCE_LEN as AEAD_NONCE_LEN, TAG_LEN as AEAD_TAG_LEN, random_nonce};
use super::data_key::{DataKey, DataKeyId};
use super::error::DecryptError;

/// The version every value is sealed with.
pub const VERSION: u8 = 0x02;
/// The first format: associated data without the lookup keys. Opened, never sealed.
pub const VERSION_1: u8 = 0x01;
pub const HEADER_LEN: usize = 5;
pub const NONCE_LEN: usize = AEAD_NONCE_LEN;
pub const TAG_LEN: usize = AEAD_TAG_LEN;
const AAD_LABEL_V1: &[u8] = b"vibee-sessions/v1";
const AAD_LABEL_V2: &[u8] = b"vibee-sessions/v2";
/// Lookup keys a place may carry (the sessions table has two).
const MAX_LOOKUP: usize = 2;

/// Where a value is stored: its table, column and row id, and the values the
/// row is found by (bound from version 2 on).
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row_id: &'a [u8],
    pub lookup: [&'a [u8]; MAX_LOOKUP],
}

impl<'a> FieldRef<'a> {
    pub fn new(table: &'static str, column: &'static str, row_id: &'a [u8]) -> Self {
        Self {
            table,
            column,
            row_id,
            lookup: [&[], &[]],
        }
    }

    /// The same place, bound to the row's lookup keys (for sessions:
    /// `user_id`, `session_id`).
    pub fn looked_up_by(self, first: &'a [u8], second: &'a [u8]) -> Self {
        Self {
            lookup: [first, second],
            ..self
        }
    }
}

fn header(version: u8, key_id: DataKeyId) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = version;
    h[1..].copy_from_slice(&key_id.0.to_be_bytes());
    h
}

/// Calls `f` with the associated data of a field: on the stack (no
/// allocation) when it fits, as it does for our tables and usual ids.
///
/// v1: `"vibee-sessions/v1" ‖ 0 ‖ table ‖ 0 ‖ column ‖ 0 ‖ row id ‖ header`
/// (the NUL separators keep ("ab","c") and ("a","bc") apart).
/// v2: `"vibee-sessions/v2"`, then table, column, row id and each lookup key
/// as `length (2, big-endian) ‖ bytes`, then the header: every part is
/// delimited by its length, whatever bytes it holds.
fn with_associated_data<R>(
    field: &FieldRef<'_>,
    header: &[u8; HEADER_LEN],
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let mut stack = [0u8; 512];
    let mut heap = Vec::new();
    let mut at = 0;
    let mut put = |buf: &mut Vec<u8>, stack: &mut [u8; 512], part: &[u8]| {
        if !buf.is_empty() || at + part.len() > stack.len() {
            if buf.is_empty() {
                buf.extend_from_slice(&stack[..at]);
            }
            buf.extend_from_slice(part);
        } else {
            stack[at..at + part.len()].copy_from_slice(part);
        }
        at += part.len();
    };
    if header[0] == VERSION_1 {
        for part in [
            AAD_LABEL_V1,
            &[0],
            field.table.as_bytes(),
            &[0],
            field.column.as_bytes(),
            &[0],
            field.row_id,
        ] {
            put(&mut heap, &mut stack, part);
        }
    } else {
        put(&mut heap, &mut stack, AAD_LABEL_V2);
        let parts = [
            field.table.as_bytes(),
            field.column.as_bytes(),
            field.row_id,
            field.lookup[0],
            field.lookup[1],
        ];
        for part in parts {
            // Lengths beyond u16 cannot occur (ids are at most 128 bytes);
            // saturating keeps it total rather than panicking.
            let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
            put(&mut heap, &mut stack, &len.to_be_bytes());
            put(&mut heap, &mut stack, part);
        }
    }
    put(&mut heap, &mut stack, header);
    if heap.is_empty() {
        f(&stack[..at])
    } else {
        f(&heap)
    }
}

pub(super) fn seal(key: &DataKey, field: &FieldRef<'_>, plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, field, plaintext, &random_nonce(), VERSION)
}

/// Sealing with a chosen nonce (and version) exists only for the golden
/// vectors; production code reaches it through `seal`, which always draws a
/// fresh random nonce and seals the current version.
pub(super) fn seal_with_nonce(
    key: &DataKey,
    field: &FieldRef<'_>,
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
    version: u8,
) -> Vec<u8> {
    let header = header(version, key.id());
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    with_associated_data(field, &header, |aad| {
        key.cipher().seal_in_place(nonce, aad, &mut out, start)
    });
    out
}

/// The data key id a stored value names, if it is shaped like one of ours.
pub fn peek_data_key_id(stored: &[u8]) -> Option<DataKeyId> {
    if stored.len() < HEADER_LEN + NONCE_LEN + TAG_LEN
        || !(stored[0] == VERSION || stored[0] == VERSION_1)
    {
        return None;
    }
    Some(DataKeyId(u32::from_be_bytes(stored[1..5].try_into().ok()?)))
}

pub(super) fn open(
    key: &DataKey,
    field: &FieldRef<'_>,
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    if peek_data_key_id(stored) != Some(key.id()) {
        return Err(DecryptError);
    }
    let header: [u8; HEADER_LEN] = stored[..HEADER_LEN].try_into().map_err(|_| DecryptError)?;
    let nonce: [u8; NONCE_LEN] = stored[HEADER_LEN..HEADER_LEN + NONCE_LEN]
        .try_into()
        .map_err(|_| DecryptError)?;
    with_associated_data(field, &header, |aad| {
        key.cipher()
            .open(&nonce, aad, &stored[HEADER_LEN + NONCE_LEN..])
    })
}
