//! The stored form of an encrypted field:
//! `version (0x01) ‖ data key id (4, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
//!
//! The associated data binds a value to its place (table, column, row id) and
//! to its own header, so a value copied elsewhere, or relabelled with another
//! key id or version, fails to open.

use zeroize::Zeroizing;

use super::aead::{NONCE_LEN as AEAD_NONCE_LEN, TAG_LEN as AEAD_TAG_LEN, random_nonce};
use super::data_key::{DataKey, DataKeyId};
use super::error::DecryptError;

pub const VERSION: u8 = 0x01;
pub const HEADER_LEN: usize = 5;
pub const NONCE_LEN: usize = AEAD_NONCE_LEN;
pub const TAG_LEN: usize = AEAD_TAG_LEN;
const AAD_LABEL: &[u8] = b"vibee-sessions/v1";

/// Where a value is stored: its table, column and row id.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row_id: &'a [u8],
}

impl<'a> FieldRef<'a> {
    pub fn new(table: &'static str, column: &'static str, row_id: &'a [u8]) -> Self {
        Self {
            table,
            column,
            row_id,
        }
    }
}

fn header(key_id: DataKeyId) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = VERSION;
    h[1..].copy_from_slice(&key_id.0.to_be_bytes());
    h
}

/// `"vibee-sessions/v1" ‖ 0 ‖ table ‖ 0 ‖ column ‖ 0 ‖ row id ‖ header`. The NUL
/// separators keep ("ab","c") and ("a","bc") apart.
/// Calls `f` with the associated data of a field: on the stack (no
/// allocation) when it fits, as it always does for our tables and columns.
fn with_associated_data<R>(
    field: &FieldRef<'_>,
    header: &[u8; HEADER_LEN],
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let parts: [&[u8]; 8] = [
        AAD_LABEL,
        &[0],
        field.table.as_bytes(),
        &[0],
        field.column.as_bytes(),
        &[0],
        field.row_id,
        header,
    ];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut stack = [0u8; 192];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for part in parts {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    f(buf)
}

pub(super) fn seal(key: &DataKey, field: &FieldRef<'_>, plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, field, plaintext, &random_nonce())
}

/// Sealing with a chosen nonce exists only for the golden vectors; production
/// code reaches it through `seal`, which always draws a fresh random nonce.
pub(super) fn seal_with_nonce(
    key: &DataKey,
    field: &FieldRef<'_>,
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let header = header(key.id());
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
    if stored.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || stored[0] != VERSION {
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
