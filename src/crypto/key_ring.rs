use std::sync::{Arc, RwLock};

use super::data_key::{DataKey, DataKeyId, WrappedDataKey};
use super::error::{DecryptError, KeyError};
use super::field::{self, FieldRef};
use super::master_key::{KekId, MasterKey};
use super::plaintext::Plaintext;

/// The master key in use, and during a master key rotation the one before it.
pub struct MasterKeys {
    current: MasterKey,
    previous: Option<MasterKey>,
}

impl MasterKeys {
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// Both keys, for callers that hold master keys of other kinds beside them.
    pub fn into_parts(self) -> (MasterKey, Option<MasterKey>) {
        (self.current, self.previous)
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    pub fn previous(&self) -> Option<&MasterKey> {
        self.previous.as_ref()
    }

    /// The master key whose fingerprint a stored data key names, if we hold it.
    pub fn by_kek_id(&self, kek_id: &KekId) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|m| m.kek_id() == kek_id)
    }

    /// Unwraps a stored data key, refusing at once when its KEK id names a
    /// master key we do not hold.
    pub fn unwrap_data_key(
        &self,
        id: DataKeyId,
        kek_id: &KekId,
        wrapped: &WrappedDataKey,
    ) -> Result<DataKey, KeyError> {
        let master = self
            .by_kek_id(kek_id)
            .ok_or_else(|| KeyError::WrongMasterKey {
                key_id: id.0,
                stored: kek_id.to_string(),
                ours: self.current.kek_id().to_string(),
            })?;
        DataKey::unwrap(id, wrapped, master)
    }

    /// Re-wraps a stored data key under `new` (a master key rotation). The key
    /// bytes exist unwrapped only inside this call and are zeroized on return.
    pub fn rewrap_data_key(
        &self,
        id: DataKeyId,
        kek_id: &KekId,
        wrapped: &WrappedDataKey,
        new: &MasterKey,
    ) -> Result<WrappedDataKey, KeyError> {
        Ok(self.unwrap_data_key(id, kek_id, wrapped)?.wrap(new))
    }
}

/// The unwrapped data keys of one moment: one primary that seals, all that open.
pub struct KeyRing {
    /// A handful of keys at most (the primary and those a rotation still
    /// moves rows off): a scan beats hashing on every open.
    keys: Vec<DataKey>,
    primary: DataKeyId,
}

impl KeyRing {
    pub fn new(primary: DataKeyId, keys: Vec<DataKey>) -> Result<Self, KeyError> {
        let mut unique: Vec<DataKey> = Vec::with_capacity(keys.len());
        for key in keys {
            match unique.iter_mut().find(|k| k.id() == key.id()) {
                Some(slot) => *slot = key,
                None => unique.push(key),
            }
        }
        let keys = unique;
        if !keys.iter().any(|k| k.id() == primary) {
            return Err(KeyError::NoPrimary);
        }
        Ok(Self { keys, primary })
    }

    pub fn primary_id(&self) -> DataKeyId {
        self.primary
    }

    pub fn contains(&self, id: DataKeyId) -> bool {
        self.get(id).is_some()
    }

    pub fn key_ids(&self) -> impl Iterator<Item = DataKeyId> + '_ {
        self.keys.iter().map(DataKey::id)
    }

    pub fn get(&self, id: DataKeyId) -> Option<&DataKey> {
        self.keys.iter().find(|k| k.id() == id)
    }

    /// Seals under the primary key.
    pub fn seal(&self, field: &FieldRef<'_>, plaintext: &[u8]) -> Vec<u8> {
        let primary = self
            .get(self.primary)
            .expect("the ring holds its primary key");
        field::seal(primary, field, plaintext)
    }

    /// Opens a value sealed under any key of the ring.
    pub fn open(&self, field: &FieldRef<'_>, stored: &[u8]) -> Result<Plaintext, DecryptError> {
        let id = field::peek_data_key_id(stored).ok_or(DecryptError)?;
        let key = self.get(id).ok_or(DecryptError)?;
        field::open(key, field, stored)
    }
}

/// The key ring a process currently uses, swapped whole when keys change.
pub struct SharedKeyRing(RwLock<Arc<KeyRing>>);

impl SharedKeyRing {
    pub fn new(ring: KeyRing) -> Self {
        Self(RwLock::new(Arc::new(ring)))
    }

    pub fn get(&self) -> Arc<KeyRing> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn replace(&self, ring: KeyRing) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    }
}
