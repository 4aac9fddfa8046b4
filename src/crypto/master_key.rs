use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::aead::{Cipher, KEY_LEN};
use super::error::KeyError;
use super::private_file::Rules;

/// The key-encryption key. It wraps data keys and nothing else, and is never
/// stored in the database. No `Debug`, no `Clone`.
pub struct MasterKey {
    cipher: Cipher,
    kek_id: KekId,
}

/// The public fingerprint of a master key: HMAC-SHA256 keyed by the master key
/// over a fixed label, first 16 bytes, hex. Stored beside every wrapped data key
/// so a wrong master key is recognised before anything is decrypted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KekId(String);

const KEK_ID_LABEL: &[u8] = b"vibee-sessions/v1/kek-id";

impl MasterKey {
    pub(super) fn from_bytes(bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        let key = bytes.expose_secret();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        mac.update(KEK_ID_LABEL);
        let digest = mac.finalize().into_bytes();
        Self {
            cipher: Cipher::new(key),
            kek_id: KekId(hex::encode(&digest[..16])),
        }
    }

    /// A new random master key, and its base64 form for the operator to store.
    pub fn generate() -> (Self, SecretString) {
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| super::random_bytes(k));
        let encoded = SecretString::from(BASE64.encode(bytes.expose_secret()));
        (Self::from_bytes(bytes), encoded)
    }

    /// Parses a base64 key. `source_name` (e.g. `MASTER_KEY`) goes into errors.
    pub fn from_base64(encoded: &str, source_name: &str) -> Result<Self, KeyError> {
        let decoded = Zeroizing::new(BASE64.decode(encoded.trim().as_bytes()).map_err(|_| {
            KeyError::NotBase64 {
                source_name: source_name.to_owned(),
            }
        })?);
        if decoded.len() != KEY_LEN {
            return Err(KeyError::WrongLength {
                source_name: source_name.to_owned(),
                len: decoded.len(),
            });
        }
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.copy_from_slice(&decoded));
        Ok(Self::from_bytes(bytes))
    }

    /// Reads a base64 key file, opened once without following a symlink, and
    /// refused unless this user owns it and group and others have no access
    /// (checked on the open descriptor), or when its directory is writable
    /// by others.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        check_key_dir(path)?;
        let bytes = super::private_file::read(path, "the master key file", Rules::Private)?;
        let contents = std::str::from_utf8(&bytes).map_err(|_| KeyError::NotBase64 {
            source_name: shown.clone(),
        })?;
        Self::from_base64(contents, &shown)
    }

    pub(super) fn from_derived(bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        Self::from_bytes(bytes)
    }

    pub fn kek_id(&self) -> &KekId {
        &self.kek_id
    }

    pub(super) fn cipher(&self) -> &Cipher {
        &self.cipher
    }
}

/// Refuses a key file in a directory that group or others may write, unless
/// the directory is sticky (like /tmp): there a stranger could swap the key
/// file for one of theirs, and every new data key would be wrapped under it.
#[cfg(unix)]
fn check_key_dir(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let Ok(meta) = std::fs::metadata(&dir) else {
        // The file was readable, so its directory exists; a directory we
        // cannot stat is left to the file check above.
        return Ok(());
    };
    let mode = meta.permissions().mode();
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Err(KeyError::DirPermissions {
            dir: dir.display().to_string(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_dir(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

impl KekId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A KEK id as read back from storage.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekId({})", self.0)
    }
}
