use std::fmt;

/// The one error every failed decryption gives: it says nothing of why, so an
/// attacker learns nothing from it (wrong key, tampered byte, moved value and
/// truncated input all look alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptError;

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "decryption failed: the value is corrupt, was moved, or was sealed under another key",
        )
    }
}

impl std::error::Error for DecryptError {}

/// Problems with key material as configured by an operator. Messages name the
/// source and the problem, never the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{source_name} is not valid base64 (expected the output of `vibee-sessions keygen`)")]
    NotBase64 { source_name: String },
    #[error("{source_name} decodes to {len} bytes; a master key is exactly 32 bytes")]
    WrongLength { source_name: String, len: usize },
    /// A key file refused (unreadable, a symlink, another user's, too open).
    #[error(transparent)]
    File(#[from] super::private_file::Refused),
    #[error(
        "the directory {dir} holding the master key file is writable by group or others \
         (mode {mode:o}): anyone who can write there can replace the key; run \
         `chmod go-w {dir}`"
    )]
    DirPermissions { dir: String, mode: u32 },
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("the stored key-derivation parameters are out of bounds: {0}")]
    KdfParamsOutOfBounds(String),
    #[error(
        "the master key does not match the one that wrapped the data keys (key {key_id} was wrapped under master key {stored}, this master key is {ours})"
    )]
    WrongMasterKey {
        key_id: DataKeyIdDisplay,
        stored: String,
        ours: String,
    },
    #[error("data key {0} could not be unwrapped: its stored form is corrupt")]
    CorruptWrappedKey(DataKeyIdDisplay),
    /// The master key lives in a key service that could not do what was
    /// asked; the message (made outside this module) names the service and why.
    #[error("{0}")]
    MasterKeyUnavailable(String),
    #[error("the key ring has no primary data key")]
    NoPrimary,
    #[error("data key {0} is not in the key ring")]
    UnknownKey(DataKeyIdDisplay),
}

/// A data key id as shown in messages.
pub type DataKeyIdDisplay = u32;
