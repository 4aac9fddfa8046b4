//! The master key (KEK) whatever its kind: a local key (from the
//! environment, a file or a passphrase; `crypto::MasterKey`) or a key in a
//! transit secrets engine (`transit::Transit`), which wraps and unwraps data
//! keys without ever handing the KEK out. The vault, the key lifecycle and
//! `rotate-master` work through this type and never care which it is.
//!
//! Unwrapping is done for a whole set of data keys at once: locally key by
//! key, through transit in one `decrypt` call with `batch_input`, so a ring
//! of 100 keys costs one round trip.

use std::sync::Arc;

use crate::crypto::{DataKey, DataKeyId, KekId, KeyError, MasterKey, MasterKeys, WrappedDataKey};
use crate::transit::{StoredWrap, Transit};

/// One master key.
pub enum Kek {
    Local(MasterKey),
    Transit(Arc<Transit>),
}

/// A stored data key to unwrap.
pub struct Stored<'a> {
    pub id: DataKeyId,
    pub kek_id: &'a KekId,
    pub wrapped: &'a [u8],
}

fn unavailable(e: crate::transit::TransitError) -> KeyError {
    KeyError::MasterKeyUnavailable(e.0)
}

/// Runs a blocking transit call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, KeyError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        KeyError::MasterKeyUnavailable(format!("the secrets engine call did not finish: {e}"))
    })?
}

impl Kek {
    pub fn kek_id(&self) -> &KekId {
        match self {
            Kek::Local(m) => m.kek_id(),
            Kek::Transit(t) => t.kek_id(),
        }
    }

    /// `local` or `transit`, for status output.
    pub fn kind(&self) -> &'static str {
        match self {
            Kek::Local(_) => "local",
            Kek::Transit(_) => "transit",
        }
    }

    pub fn transit(&self) -> Option<&Arc<Transit>> {
        match self {
            Kek::Transit(t) => Some(t),
            Kek::Local(_) => None,
        }
    }

    /// Wraps data keys under this key (one batch call for transit).
    pub async fn wrap(
        &self,
        keys: Vec<DataKey>,
    ) -> Result<Vec<(DataKey, WrappedDataKey)>, KeyError> {
        match self {
            Kek::Local(m) => Ok(keys
                .into_iter()
                .map(|k| {
                    let w = k.wrap(m);
                    (k, w)
                })
                .collect()),
            Kek::Transit(t) => {
                let t = t.clone();
                blocking(move || {
                    let refs: Vec<&DataKey> = keys.iter().collect();
                    let wraps = t.wrap(&refs).map_err(unavailable)?;
                    Ok(keys
                        .into_iter()
                        .zip(wraps)
                        .map(|(k, w)| (k, WrappedDataKey(w)))
                        .collect())
                })
                .await
            }
        }
    }

    /// Unwraps data keys that this key wrapped.
    async fn unwrap(&self, items: Vec<(DataKeyId, Vec<u8>)>) -> Result<Vec<DataKey>, KeyError> {
        match self {
            Kek::Local(m) => items
                .iter()
                .map(|(id, w)| DataKey::unwrap(*id, &WrappedDataKey(w.clone()), m))
                .collect(),
            Kek::Transit(t) => {
                let t = t.clone();
                blocking(move || {
                    let wraps: Vec<StoredWrap<'_>> = items
                        .iter()
                        .map(|(id, w)| StoredWrap {
                            id: *id,
                            ciphertext: w,
                        })
                        .collect();
                    t.unwrap(&wraps).map_err(unavailable)
                })
                .await
            }
        }
    }
}

/// The master key in use, and during a master key rotation the one before it.
pub struct Keks {
    current: Kek,
    previous: Option<Kek>,
}

impl From<MasterKeys> for Keks {
    fn from(m: MasterKeys) -> Self {
        let (current, previous) = m.into_parts();
        Self::new(Kek::Local(current), previous.map(Kek::Local))
    }
}

impl Keks {
    pub fn new(current: Kek, previous: Option<Kek>) -> Self {
        Self { current, previous }
    }

    pub fn current(&self) -> &Kek {
        &self.current
    }

    pub fn previous(&self) -> Option<&Kek> {
        self.previous.as_ref()
    }

    pub fn by_kek_id(&self, kek_id: &KekId) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.kek_id() == kek_id)
    }

    /// Refuses at once a data key whose KEK id names a master key we do not hold.
    pub fn check(&self, id: DataKeyId, kek_id: &KekId) -> Result<&Kek, KeyError> {
        self.by_kek_id(kek_id)
            .ok_or_else(|| KeyError::WrongMasterKey {
                key_id: id.0,
                stored: kek_id.to_string(),
                ours: self.current.kek_id().to_string(),
            })
    }

    /// Unwraps stored data keys, in their order: one batch per master key.
    pub async fn unwrap_all(&self, stored: &[Stored<'_>]) -> Result<Vec<DataKey>, KeyError> {
        for s in stored {
            self.check(s.id, s.kek_id)?;
        }
        let mut out: Vec<Option<DataKey>> = stored.iter().map(|_| None).collect();
        for kek in std::iter::once(&self.current).chain(self.previous.as_ref()) {
            let (positions, items): (Vec<usize>, Vec<(DataKeyId, Vec<u8>)>) = stored
                .iter()
                .enumerate()
                .filter(|(_, s)| s.kek_id == kek.kek_id())
                .map(|(i, s)| (i, (s.id, s.wrapped.to_vec())))
                .unzip();
            if items.is_empty() {
                continue;
            }
            for (pos, key) in positions.into_iter().zip(kek.unwrap(items).await?) {
                out[pos] = Some(key);
            }
        }
        Ok(out
            .into_iter()
            .map(|k| k.expect("every stored key matched a master key above"))
            .collect())
    }
}
