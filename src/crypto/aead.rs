//! The one place that calls AES-256-GCM. Everything above it works in whole
//! messages; this works in buffers, so a seal costs one allocation.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use zeroize::Zeroizing;

use super::error::DecryptError;

pub(super) const KEY_LEN: usize = 32;
pub(super) const NONCE_LEN: usize = 12;
pub(super) const TAG_LEN: usize = 16;

/// An expanded AES-256-GCM key. Deliberately neither `Debug` nor `Clone`; the
/// key schedule is zeroized on drop (aes-gcm's `zeroize` feature), and boxed so
/// moving its owner leaves no copy of it behind on the stack.
pub(super) struct Cipher(Box<Aes256Gcm>);

impl Cipher {
    pub(super) fn new(key: &[u8; KEY_LEN]) -> Self {
        Self(Box::new(Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))))
    }

    /// Encrypts `out[start..]` in place and appends the tag.
    pub(super) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        out: &mut Vec<u8>,
        start: usize,
    ) {
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, (&mut out[start..]).into())
            // Only fails for messages longer than GCM's 64 GiB limit, which no field reaches.
            .expect("AES-GCM refused a message: longer than 64 GiB");
        out.extend_from_slice(&tag);
    }

    /// Decrypts `ciphertext ‖ tag` into a zeroizing buffer.
    pub(super) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let split = ciphertext_and_tag
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(DecryptError)?;
        let (ciphertext, tag) = ciphertext_and_tag.split_at(split);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| DecryptError)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        self.0
            .decrypt_inout_detached(
                &Nonce::from(*nonce),
                aad,
                buf.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| DecryptError)?;
        Ok(buf)
    }
}

/// A fresh random 96-bit nonce.
pub(super) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    super::random_bytes(&mut nonce);
    nonce
}
