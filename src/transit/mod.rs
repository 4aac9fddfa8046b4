//! The transit secrets engine of OpenBao or HashiCorp Vault as the master key
//! (KEK): data keys are wrapped by its `encrypt` and unwrapped by its
//! `decrypt`, so the key-encryption key never leaves the engine.
//!
//! Each data key is bound to its id through `associated_data` (AES-GCM's AAD,
//! on an `aes256-gcm96` key), with the same bytes a local master key uses as
//! AAD. Why AD and not a derived key's `context`: AD works on the default key
//! type, needs no `derived=true` set when the key is created (which cannot be
//! changed later), and keeps one key version history; the binding is the same
//! — a wrap moved to another key's row fails to decrypt. See docs/TRANSIT.md.
//!
//! Calls are blocking (ureq); async callers run them on the blocking pool.
//! No transit call is ever made on a request path: only at start, when the
//! key ring reloads with a changed set of keys, when a data key is created
//! (`rotate`, first start), by `rotate-master`, and by the token upkeep.

mod auth;
mod http;
pub mod settings;
mod upkeep;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{DataKey, DataKeyId, KekId, wrap_aad};

pub use auth::Due;
pub use http::CallError;
pub use settings::{SettingsError, TransitSettings};
pub use upkeep::spawn_upkeep;

use auth::{Auth, AuthError};
use http::Http;

/// A transit key, reachable. Shared (`Arc`) between the vault and the upkeep task.
pub struct Transit {
    http: Http,
    auth: Auth,
    mount: String,
    key: String,
    engine: String,
    kek_id: KekId,
}

/// Why a transit operation failed, for an operator: names the engine, the
/// key and the cause; never a token, a secret id, or key material.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransitError(pub String);

#[derive(Serialize)]
struct EncryptItem<'a> {
    plaintext: &'a str,
    associated_data: String,
}

#[derive(Serialize)]
struct DecryptItem<'a> {
    ciphertext: &'a str,
    associated_data: String,
}

#[derive(Serialize)]
struct Batch<T> {
    batch_input: Vec<T>,
}

#[derive(Deserialize)]
struct BatchAnswer<T> {
    data: Option<BatchData<T>>,
}

#[derive(Deserialize)]
struct BatchData<T> {
    batch_results: Vec<T>,
}

#[derive(Deserialize)]
struct Encrypted {
    #[serde(default)]
    ciphertext: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct Decrypted {
    plaintext: Option<SecretString>,
    #[serde(default)]
    error: String,
}

/// A stored wrap to open: the data key's id and transit's ciphertext.
pub struct StoredWrap<'a> {
    pub id: DataKeyId,
    pub ciphertext: &'a [u8],
}

/// The key version a transit ciphertext (`vault:vN:...`) was made with.
pub fn wrap_version(ciphertext: &[u8]) -> Option<u32> {
    let rest = ciphertext.strip_prefix(b"vault:v")?;
    let end = rest.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn aad(id: DataKeyId) -> String {
    BASE64.encode(wrap_aad(id))
}

impl Transit {
    pub fn new(settings: TransitSettings) -> Result<Self, SettingsError> {
        let http = Http::new(&settings)?;
        let kek_id = settings.kek_id();
        Ok(Self {
            http,
            auth: Auth::new(settings.credentials),
            mount: settings.mount,
            key: settings.key,
            engine: settings.engine,
            kek_id,
        })
    }

    pub fn kek_id(&self) -> &KekId {
        &self.kek_id
    }

    pub fn engine(&self) -> &str {
        &self.engine
    }

    pub fn addr(&self) -> &str {
        self.http.addr()
    }

    pub fn mount(&self) -> &str {
        &self.mount
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// `Some(true)` when the last call reached the engine, `Some(false)` when
    /// it did not, `None` before any call.
    pub fn engine_up(&self) -> Option<bool> {
        self.http.state.up()
    }

    pub fn last_error(&self) -> Option<(String, Duration)> {
        self.http.state.last_error()
    }

    fn describe(&self) -> String {
        format!(
            "transit key {}/keys/{} at {}",
            self.mount,
            self.key,
            self.http.addr()
        )
    }

    fn auth_error(&self, e: AuthError) -> TransitError {
        TransitError(match e {
            AuthError::Config(m) => m,
            AuthError::Refused(m) => m,
            AuthError::Call(c) => self.call_error("authenticate", c),
        })
    }

    fn call_error(&self, what: &str, e: CallError) -> String {
        match e {
            CallError::Denied { path, reason } => format!(
                "the secrets engine refused to {what} with the {} ({reason} on {path}): the \
                 token's policy must grant `update` on {}/encrypt/{k} and {}/decrypt/{k} \
                 (docs/TRANSIT.md)",
                self.describe(),
                self.mount,
                self.mount,
                k = self.key
            ),
            e @ CallError::Unreachable { .. } => {
                format!("cannot {what} with the {}: {e}", self.describe())
            }
            e => format!("cannot {what} with the {}: {e}", self.describe()),
        }
    }

    /// Authenticates now (at start), so a bad token or an engine that is down
    /// is reported before anything else is attempted.
    pub fn connect(&self) -> Result<(), TransitError> {
        self.auth
            .authenticate(&self.http)
            .map(drop)
            .map_err(|e| self.auth_error(e))
    }

    /// POSTs to `{mount}/{op}/{key}`; a refused token is replaced once (AppRole
    /// logs in again, a token file is read again) and the call repeated.
    fn post(&self, op: &'static str, body: &str) -> Result<(u16, Zeroizing<String>), TransitError> {
        let path = format!("{}/{op}/{}", self.mount, self.key);
        let verb = if op == "encrypt" {
            "wrap data keys"
        } else {
            "unwrap data keys"
        };
        let mut retried = false;
        loop {
            let token = self
                .auth
                .token(&self.http)
                .map_err(|e| self.auth_error(e))?;
            match self
                .http
                .call(op, &path, Some(token.expose_secret()), Some(body))
            {
                Err(CallError::Denied { .. }) if !retried => {
                    retried = true;
                    self.auth.forget();
                }
                Err(e) => return Err(TransitError(self.call_error(verb, e))),
                Ok(answer) => return Ok(answer),
            }
        }
    }

    /// Wraps data keys in one `encrypt` call with `batch_input`; the answer's
    /// ciphertexts come in the order of `keys`.
    pub fn wrap(&self, keys: &[&DataKey]) -> Result<Vec<Vec<u8>>, TransitError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let exported: Vec<SecretString> = keys.iter().map(|k| k.export_for_wrapping()).collect();
        let batch = Batch {
            batch_input: keys
                .iter()
                .zip(&exported)
                .map(|(k, p)| EncryptItem {
                    plaintext: p.expose_secret(),
                    associated_data: aad(k.id()),
                })
                .collect(),
        };
        let body = Zeroizing::new(serde_json::to_string(&batch).expect("JSON of strings"));
        drop(batch);
        let (status, answer) = self.post("encrypt", &body)?;
        let results = self.results::<Encrypted>(status, &answer, "encrypt", keys.len())?;
        results
            .into_iter()
            .zip(keys)
            .map(|(r, k)| {
                if r.error.is_empty() && r.ciphertext.starts_with("vault:v") {
                    Ok(r.ciphertext.into_bytes())
                } else {
                    Err(TransitError(format!(
                        "the {} could not wrap data key {}: {}",
                        self.describe(),
                        k.id(),
                        r.error
                    )))
                }
            })
            .collect()
    }

    /// Unwraps stored wraps in one `decrypt` call with `batch_input`. A wrap
    /// this key cannot open stops everything, with a message that says so.
    pub fn unwrap(&self, wraps: &[StoredWrap<'_>]) -> Result<Vec<DataKey>, TransitError> {
        if wraps.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = Vec::with_capacity(wraps.len());
        for w in wraps {
            let ciphertext = std::str::from_utf8(w.ciphertext)
                .ok()
                .filter(|c| wrap_version(c.as_bytes()).is_some())
                .ok_or_else(|| {
                    TransitError(format!(
                        "data key {} is not wrapped by transit (its stored wrap is not a \
                         vault:vN: ciphertext)",
                        w.id
                    ))
                })?;
            input.push(DecryptItem {
                ciphertext,
                associated_data: aad(w.id),
            });
        }
        let body = serde_json::to_string(&Batch { batch_input: input }).expect("JSON of strings");
        let (status, answer) = self.post("decrypt", &body)?;
        let results = self.results::<Decrypted>(status, &answer, "decrypt", wraps.len())?;
        let mut keys = Vec::with_capacity(wraps.len());
        for (r, w) in results.into_iter().zip(wraps) {
            let plaintext = match r.plaintext {
                Some(p) if r.error.is_empty() && !p.expose_secret().is_empty() => p,
                _ => {
                    return Err(TransitError(format!(
                        "the {} cannot decrypt the stored wrap of data key {} ({}): it is not \
                         the key that wrapped the data keys (was it deleted and created \
                         again, or is this another engine?), or the wrap was tampered with",
                        self.describe(),
                        w.id,
                        if r.error.is_empty() {
                            "no plaintext"
                        } else {
                            &r.error
                        }
                    )));
                }
            };
            keys.push(DataKey::from_unwrapped(w.id, &plaintext).map_err(|_| {
                TransitError(format!(
                    "the {} unwrapped data key {} to something that is not a 32-byte key",
                    self.describe(),
                    w.id
                ))
            })?);
        }
        Ok(keys)
    }

    fn results<T: serde::de::DeserializeOwned>(
        &self,
        status: u16,
        answer: &str,
        op: &str,
        expected: usize,
    ) -> Result<Vec<T>, TransitError> {
        let parsed = serde_json::from_str::<BatchAnswer<T>>(answer)
            .ok()
            .and_then(|a| a.data)
            .map(|d| d.batch_results);
        match parsed {
            Some(r) if r.len() == expected => Ok(r),
            _ if status == 400 => Err(TransitError(format!(
                "the {} refused {op}: {}{}",
                self.describe(),
                http::reason(answer),
                if http::reason(answer).contains("not found") {
                    " (is MASTER_KEY_TRANSIT_KEY / MASTER_KEY_TRANSIT_MOUNT the right key? \
                     create it with `bao write -f transit/keys/NAME`)"
                } else {
                    ""
                }
            ))),
            _ => Err(TransitError(format!(
                "the {} answered {op} with something unexpected (status {status})",
                self.describe()
            ))),
        }
    }

    /// What the token upkeep should do now.
    pub fn due(&self) -> Due {
        self.auth.due()
    }

    /// Renews the token, or logs in again; on a failed renewal, a new login
    /// (AppRole) or a fresh read of the token (file) is tried.
    pub fn refresh(&self, due: Due) -> Result<(), TransitError> {
        let result = match due {
            Due::Nothing => return Ok(()),
            Due::Renew => self.auth.renew(&self.http).or_else(|e| {
                tracing::warn!(error = %self.auth_error(e), "renewing the engine token failed; authenticating again");
                self.auth.authenticate(&self.http).map(drop)
            }),
            Due::Login => self.auth.authenticate(&self.http).map(drop),
        };
        result.map_err(|e| self.auth_error(e))
    }

    /// Asks `sys/health` (unauthenticated, cheap) so `/readyz` knows whether
    /// the engine is reachable between the rare calls that need it.
    pub fn probe(&self) {
        // Standby and sealed nodes answer with other codes; sys/health's
        // defaults make every non-active state a non-2xx we only report.
        let _ = self.http.call(
            "health",
            "sys/health?standbyok=true&perfstandbyok=true",
            None,
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::wrap_version;

    #[test]
    fn wrap_version_reads_the_key_version_of_a_transit_ciphertext() {
        assert_eq!(wrap_version(b"vault:v1:AAAA"), Some(1));
        assert_eq!(wrap_version(b"vault:v12:AAAA"), Some(12));
        assert_eq!(wrap_version(b"vault:vx:AAAA"), None);
        assert_eq!(wrap_version(b"vault:v1"), None);
        assert_eq!(wrap_version(&[1, 2, 3]), None, "a local wrap");
    }
}
