//! The stored form of an encrypted field:
//! `version ‖ data key id (4, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
//!
//! The associated data binds a value to its place (table, column, row id),
//! from version 2 on also to the keys the row is looked up by (its
//! `user_id` and `session_id`), and to its own header, so a value copied
//! elsewhere, left in a row whose lookup keys were changed, or relabelled
//! with another key id or version, fails to open. Version 1 values (row id
//! only) still open; everything is sealed as version 2.

use super::aead::{NONCE_LEN as AEAD_NONCE_LEN, TAG_LEN as AEAD_TAG_LEN, random_nonce};
use super::data_key::{DataKey, DataKeyId};
use super::error::DecryptError;
use super::plaintext::Plaintext;

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

/// The length of a field's associated data (`push_associated_data`).
fn associated_data_len(field: &FieldRef<'_>, version: u8) -> usize {
    let place = field.table.len() + field.column.len() + field.row_id.len();
    if version == VERSION_1 {
        AAD_LABEL_V1.len() + 3 + place + HEADER_LEN
    } else {
        let lookup = field.lookup[0].len() + field.lookup[1].len();
        AAD_LABEL_V2.len() + 2 * (3 + MAX_LOOKUP) + place + lookup + HEADER_LEN
    }
}

/// Appends the associated data of a field to `buf`.
///
/// v1: `"vibee-sessions/v1" ‖ 0 ‖ table ‖ 0 ‖ column ‖ 0 ‖ row id ‖ header`
/// (the NUL separators keep ("ab","c") and ("a","bc") apart).
/// v2: `"vibee-sessions/v2"`, then table, column, row id and each lookup key
/// as `length (2, big-endian) ‖ bytes`, then the header: every part is
/// delimited by its length, whatever bytes it holds.
fn push_associated_data(buf: &mut Vec<u8>, field: &FieldRef<'_>, header: &[u8; HEADER_LEN]) {
    let before = buf.len();
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
            buf.extend_from_slice(part);
        }
    } else {
        buf.extend_from_slice(AAD_LABEL_V2);
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
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(part);
        }
    }
    buf.extend_from_slice(header);
    debug_assert_eq!(buf.len() - before, associated_data_len(field, header[0]));
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
    let start = HEADER_LEN + NONCE_LEN;
    let aad_at = start + plaintext.len();
    // The associated data is built where the tag will go (the label alone
    // is longer than a tag): one buffer, one allocation, no copy on the
    // stack, and the tag never makes it grow.
    let aad_len = associated_data_len(field, version);
    let mut out = Vec::with_capacity(aad_at + aad_len.max(TAG_LEN));
    out.extend_from_slice(&header);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    push_associated_data(&mut out, field, &header);
    key.cipher()
        .seal_before_associated_data(nonce, &mut out, start, aad_at);
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
) -> Result<Plaintext, DecryptError> {
    if peek_data_key_id(stored) != Some(key.id()) {
        return Err(DecryptError);
    }
    let header: [u8; HEADER_LEN] = stored[..HEADER_LEN].try_into().map_err(|_| DecryptError)?;
    let nonce: [u8; NONCE_LEN] = stored[HEADER_LEN..HEADER_LEN + NONCE_LEN]
        .try_into()
        .map_err(|_| DecryptError)?;
    let body = &stored[HEADER_LEN + NONCE_LEN..];
    let (ciphertext, tag) = body.split_at(body.len().checked_sub(TAG_LEN).ok_or(DecryptError)?);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| DecryptError)?;
    // Decrypted in place, with the associated data after the ciphertext in
    // the same buffer (one allocation), which is wiped whole on drop.
    let mut buf =
        Plaintext::with_capacity(ciphertext.len() + associated_data_len(field, header[0]));
    buf.0.extend_from_slice(ciphertext);
    push_associated_data(&mut buf.0, field, &header);
    key.cipher()
        .open_before_associated_data(&nonce, &mut buf, ciphertext.len(), tag)?;
    Ok(buf)
}
