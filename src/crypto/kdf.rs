//! Master key from a passphrase: Argon2id with parameters stored beside the data.

use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::aead::KEY_LEN;
use super::error::KeyError;
use super::master_key::MasterKey;

/// Argon2id parameters and salt for deriving the master key from a passphrase.
/// Public data: they are stored in the database so they never drift from the
/// keys they protect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdfParams {
    pub salt: Vec<u8>,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, t=3, p=4.
    pub const DEFAULT_M_COST_KIB: u32 = 64 * 1024;
    pub const DEFAULT_T_COST: u32 = 3;
    pub const DEFAULT_PARALLELISM: u32 = 4;
    const SALT_LEN: usize = 16;

    // Bounds on what is read back: a tampered row must neither weaken the
    // derivation below the defaults nor make start-up take minutes or all memory.
    const MAX_M_COST_KIB: u32 = 1024 * 1024;
    const MAX_T_COST: u32 = 10;
    const MAX_PARALLELISM: u32 = 16;
    const MAX_SALT_LEN: usize = 64;

    /// Fresh parameters with a random salt.
    pub fn generate() -> Self {
        let mut salt = vec![0u8; Self::SALT_LEN];
        super::random_bytes(&mut salt);
        Self {
            salt,
            m_cost_kib: Self::DEFAULT_M_COST_KIB,
            t_cost: Self::DEFAULT_T_COST,
            parallelism: Self::DEFAULT_PARALLELISM,
        }
    }

    /// Checks stored parameters against the bounds before any work is done.
    pub fn validate(&self) -> Result<(), KeyError> {
        let out = |what: String| Err(KeyError::KdfParamsOutOfBounds(what));
        if !(Self::DEFAULT_M_COST_KIB..=Self::MAX_M_COST_KIB).contains(&self.m_cost_kib) {
            return out(format!(
                "memory cost {} KiB is outside {}..={} KiB",
                self.m_cost_kib,
                Self::DEFAULT_M_COST_KIB,
                Self::MAX_M_COST_KIB
            ));
        }
        if !(Self::DEFAULT_T_COST..=Self::MAX_T_COST).contains(&self.t_cost) {
            return out(format!(
                "time cost {} is outside {}..={}",
                self.t_cost,
                Self::DEFAULT_T_COST,
                Self::MAX_T_COST
            ));
        }
        if !(1..=Self::MAX_PARALLELISM).contains(&self.parallelism) {
            return out(format!(
                "parallelism {} is outside 1..={}",
                self.parallelism,
                Self::MAX_PARALLELISM
            ));
        }
        if !(Self::SALT_LEN..=Self::MAX_SALT_LEN).contains(&self.salt.len()) {
            return out(format!(
                "salt of {} bytes is outside {}..={} bytes",
                self.salt.len(),
                Self::SALT_LEN,
                Self::MAX_SALT_LEN
            ));
        }
        Ok(())
    }

    /// Derives the master key. Expensive on purpose (64 MiB, three passes):
    /// call it once at start, never on a request path.
    pub fn derive(&self, passphrase: &SecretString) -> Result<MasterKey, KeyError> {
        self.validate()?;
        if passphrase.expose_secret().is_empty() {
            return Err(KeyError::EmptyPassphrase);
        }
        let params = Params::new(
            self.m_cost_kib,
            self.t_cost,
            self.parallelism,
            Some(KEY_LEN),
        )
        .map_err(|e| KeyError::KdfParamsOutOfBounds(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut failure = None;
        let key = SecretBox::init_with_mut(|out: &mut [u8; KEY_LEN]| {
            if let Err(e) =
                argon.hash_password_into(passphrase.expose_secret().as_bytes(), &self.salt, out)
            {
                failure = Some(e);
            }
        });
        if let Some(e) = failure {
            return Err(KeyError::KdfParamsOutOfBounds(e.to_string()));
        }
        Ok(MasterKey::from_derived(key))
    }
}
