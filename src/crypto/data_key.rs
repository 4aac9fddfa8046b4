use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

use super::aead::{Cipher, KEY_LEN, NONCE_LEN, TAG_LEN, random_nonce};
use super::error::{DecryptError, KeyError};
use super::master_key::MasterKey;

/// The id of a data key: the database row id, and 4 bytes big-endian in every
/// ciphertext header. Shown, debugged and serialized as the bare number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DataKeyId(pub u32);

impl fmt::Display for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A data key (DEK): encrypts fields. Held unwrapped only in memory, zeroized on
/// drop; no `Debug`, no `Clone`.
pub struct DataKey {
    id: DataKeyId,
    bytes: SecretBox<[u8; KEY_LEN]>,
    cipher: Cipher,
}

/// A data key encrypted under the master key, as stored:
/// `version 0x01 ‖ nonce (12) ‖ encrypted key (32) ‖ tag (16)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey(pub Vec<u8>);

const WRAP_VERSION: u8 = 0x01;
const WRAPPED_LEN: usize = 1 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Binds a wrapped key to its id, so swapping two rows' wrapped keys fails.
/// The same bytes bind a key wrapped by an external key service (transit's
/// `associated_data`), so both kinds of wrap are bound alike.
pub fn wrap_aad(id: DataKeyId) -> [u8; 25] {
    let mut aad = [0u8; 25];
    aad[..21].copy_from_slice(b"vibee-sessions/v1/dek");
    aad[21..].copy_from_slice(&id.0.to_be_bytes());
    aad
}

impl DataKey {
    pub(super) fn from_bytes(id: DataKeyId, bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        let cipher = Cipher::new(bytes.expose_secret());
        Self { id, bytes, cipher }
    }

    /// A new random data key with the id the database reserved for it.
    pub fn generate(id: DataKeyId) -> Self {
        Self::from_bytes(
            id,
            SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| super::random_bytes(k)),
        )
    }

    pub fn id(&self) -> DataKeyId {
        self.id
    }

    pub(super) fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// Encrypts this key under `master` for storage.
    pub fn wrap(&self, master: &MasterKey) -> WrappedDataKey {
        let nonce = random_nonce();
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(self.bytes.expose_secret());
        master
            .cipher()
            .seal_in_place(&nonce, &wrap_aad(self.id), &mut out, start);
        WrappedDataKey(out)
    }

    /// The key bytes, base64, for a key service that wraps them (transit
    /// `encrypt` takes base64 plaintext). The only way key bytes leave this
    /// module unwrapped; the string is zeroized when dropped.
    pub fn export_for_wrapping(&self) -> SecretString {
        SecretString::from(BASE64.encode(self.bytes.expose_secret()))
    }

    /// A key a key service unwrapped (transit `decrypt` answers base64): the
    /// decoded bytes go straight into the secret container. Anything but 32
    /// bytes of base64 is refused as corrupt.
    pub fn from_unwrapped(id: DataKeyId, base64: &SecretString) -> Result<Self, KeyError> {
        let decoded = Zeroizing::new(
            BASE64
                .decode(base64.expose_secret().as_bytes())
                .map_err(|_| KeyError::CorruptWrappedKey(id.0))?,
        );
        if decoded.len() != KEY_LEN {
            return Err(KeyError::CorruptWrappedKey(id.0));
        }
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.copy_from_slice(&decoded));
        Ok(Self::from_bytes(id, bytes))
    }

    /// Decrypts a stored key. The caller has already matched the KEK id, so a
    /// failure here means the stored bytes are corrupt.
    pub fn unwrap(
        id: DataKeyId,
        wrapped: &WrappedDataKey,
        master: &MasterKey,
    ) -> Result<Self, KeyError> {
        Self::try_unwrap(id, wrapped, master).map_err(|_| KeyError::CorruptWrappedKey(id.0))
    }

    fn try_unwrap(
        id: DataKeyId,
        wrapped: &WrappedDataKey,
        master: &MasterKey,
    ) -> Result<Self, DecryptError> {
        let w = &wrapped.0;
        if w.len() != WRAPPED_LEN || w[0] != WRAP_VERSION {
            return Err(DecryptError);
        }
        let nonce: [u8; NONCE_LEN] = w[1..1 + NONCE_LEN].try_into().map_err(|_| DecryptError)?;
        let plain = master
            .cipher()
            .open(&nonce, &wrap_aad(id), &w[1 + NONCE_LEN..])?;
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.copy_from_slice(&plain));
        Ok(Self::from_bytes(id, bytes))
    }
}
