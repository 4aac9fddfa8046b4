//! Everything that touches key material: the master key (KEK), data keys (DEKs),
//! the key ring and the ciphertext format of a stored field.
//!
//! This module knows nothing of SQL or HTTP: the database layer hands it bytes and
//! gets bytes back. Key bytes never leave it except wrapped.

mod aead;
mod data_key;
mod error;
mod field;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod kdf;
mod key_ring;
mod master_key;
mod plaintext;
pub mod private_file;

pub use data_key::{DataKey, DataKeyId, WrappedDataKey, wrap_aad};
pub use error::{DecryptError, KeyError};
pub use field::{FieldRef, HEADER_LEN, NONCE_LEN, TAG_LEN, VERSION, peek_data_key_id};
pub use kdf::KdfParams;
pub use key_ring::{KeyRing, MasterKeys, SharedKeyRing};
pub use master_key::{KekId, MasterKey};
pub use plaintext::Plaintext;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    // The OS RNG failing is not a condition we can recover from or work around.
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// A fresh random token of `len` bytes, hex encoded (for ids that must be unguessable).
pub fn random_hex(len: usize) -> String {
    let mut buf = vec![0u8; len];
    random_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests;
