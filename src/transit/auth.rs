//! The token the service holds for the engine: looked up (a given token) or
//! obtained (AppRole login) at start, renewed at half its TTL when renewable,
//! and for AppRole replaced by a fresh login at two thirds of it, so it never
//! runs out while the service runs. The token and the secret id live in
//! `SecretString`s and go nowhere but the `X-Vault-Token` header and the
//! login body.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::http::{CallError, Http, reason};
use super::settings::Credentials;

/// The token in use and what the engine said of its lifetime.
struct Session {
    token: SecretString,
    /// `None`: does not expire (a root or periodic-less non-expiring token).
    ttl: Option<Duration>,
    renewable: bool,
    since: Instant,
}

pub struct Auth {
    credentials: Credentials,
    session: Mutex<Option<Session>>,
}

#[derive(Deserialize)]
struct LoginAnswer {
    auth: Option<LoginAuth>,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: SecretString,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct LookupAnswer {
    data: LookupData,
}

#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: bool,
}

/// What is due for the token, for the upkeep loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    Renew,
    Login,
}

fn read_secret_file(path: &std::path::Path, var: &str) -> Result<SecretString, String> {
    use crate::crypto::private_file::{Rules, read};
    // Opened once with O_NOFOLLOW and checked on the descriptor, as every
    // secret file is (crypto::private_file).
    let bytes = read(path, var, Rules::Private).map_err(|e| e.to_string())?;
    let text = Zeroizing::new(
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("{var} {} is not UTF-8 text", path.display()))?,
    );
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{var} {} is empty", path.display()));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

impl Auth {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            session: Mutex::new(None),
        }
    }

    pub fn is_approle(&self) -> bool {
        matches!(self.credentials, Credentials::AppRole { .. })
    }

    /// The current token, authenticating first when there is none.
    pub fn token(&self, http: &Http) -> Result<SecretString, AuthError> {
        if let Some(s) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(s.token.clone());
        }
        self.authenticate(http)
    }

    /// Gets a token: logs in with AppRole, or reads the given token (from the
    /// variable, or the file again) and asks the engine what it is.
    pub fn authenticate(&self, http: &Http) -> Result<SecretString, AuthError> {
        let session = match &self.credentials {
            Credentials::AppRole {
                mount,
                role_id,
                secret_id_file,
            } => login(http, mount, role_id, secret_id_file)?,
            Credentials::Token { token, file } => {
                let token = match (file, token) {
                    (Some(path), _) => {
                        read_secret_file(path, "VAULT_TOKEN_FILE").map_err(AuthError::Config)?
                    }
                    (None, Some(t)) => t.clone(),
                    (None, None) => unreachable!("settings require a token or a file"),
                };
                lookup(http, token)?
            }
        };
        if let Some(ttl) = session.ttl {
            tracing::info!(
                ttl_secs = ttl.as_secs(),
                renewable = session.renewable,
                approle = self.is_approle(),
                "authenticated to the secrets engine"
            );
        }
        let token = session.token.clone();
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
        Ok(token)
    }

    /// Forgets the token (the engine refused it), so the next call gets a new one.
    pub fn forget(&self) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn due(&self) -> Due {
        let guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = guard.as_ref() else {
            return Due::Login;
        };
        let Some(ttl) = s.ttl else {
            return Due::Nothing;
        };
        let age = s.since.elapsed();
        if self.is_approle() && age >= ttl * 2 / 3 {
            return Due::Login;
        }
        if s.renewable && age >= ttl / 2 {
            return Due::Renew;
        }
        // A token file that cannot be renewed by us (an agent renews and
        // rewrites it): read it again before the one we hold runs out.
        if !s.renewable
            && matches!(self.credentials, Credentials::Token { file: Some(_), .. })
            && age >= ttl * 2 / 3
        {
            return Due::Login;
        }
        Due::Nothing
    }

    /// Renews the token in place (`auth/token/renew-self`).
    pub fn renew(&self, http: &Http) -> Result<(), AuthError> {
        let token = self.token(http)?;
        let (status, body) = http.call(
            "renew",
            "auth/token/renew-self",
            Some(token.expose_secret()),
            Some("{}"),
        )?;
        let auth = parse_login(status, &body, "auth/token/renew-self")?;
        let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = guard.as_mut() {
            s.ttl = (auth.lease_duration > 0).then(|| Duration::from_secs(auth.lease_duration));
            s.renewable = auth.renewable;
            s.since = Instant::now();
        }
        tracing::debug!(ttl_secs = auth.lease_duration, "renewed the engine token");
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Refused(String),
}

fn parse_login(status: u16, body: &str, path: &str) -> Result<LoginAuth, AuthError> {
    if status != 200 {
        return Err(AuthError::Refused(format!(
            "the secrets engine refused {path} ({status}: {})",
            reason(body)
        )));
    }
    serde_json::from_str::<LoginAnswer>(body)
        .ok()
        .and_then(|a| a.auth)
        .ok_or_else(|| AuthError::Refused(format!("{path}: the engine's answer holds no token")))
}

fn login(
    http: &Http,
    mount: &str,
    role_id: &SecretString,
    secret_id_file: &std::path::Path,
) -> Result<Session, AuthError> {
    let secret_id =
        read_secret_file(secret_id_file, "VAULT_SECRET_ID_FILE").map_err(AuthError::Config)?;
    let body = Zeroizing::new(
        serde_json::json!({
            "role_id": role_id.expose_secret(),
            "secret_id": secret_id.expose_secret(),
        })
        .to_string(),
    );
    let path = format!("auth/{mount}/login");
    let (status, answer) = http.call("login", &path, None, Some(&body))?;
    let auth = parse_login(status, &answer, &path)?;
    Ok(Session {
        token: auth.client_token,
        ttl: (auth.lease_duration > 0).then(|| Duration::from_secs(auth.lease_duration)),
        renewable: auth.renewable,
        since: Instant::now(),
    })
}

fn lookup(http: &Http, token: SecretString) -> Result<Session, AuthError> {
    let path = "auth/token/lookup-self";
    let (status, body) = match http.call("lookup", path, Some(token.expose_secret()), None) {
        Err(CallError::Denied { reason, .. }) => {
            return Err(AuthError::Refused(format!(
                "the secrets engine does not accept the token ({reason}): it is wrong, \
                 revoked or expired (or was made without the default policy, which grants \
                 auth/token/lookup-self)"
            )));
        }
        other => other?,
    };
    if status != 200 {
        return Err(AuthError::Refused(format!(
            "the secrets engine refused {path} ({status}: {})",
            reason(&body)
        )));
    }
    let data = serde_json::from_str::<LookupAnswer>(&body)
        .map_err(|_| AuthError::Refused(format!("{path}: unexpected answer from the engine")))?
        .data;
    Ok(Session {
        token,
        ttl: (data.ttl > 0).then(|| Duration::from_secs(data.ttl)),
        renewable: data.renewable,
        since: Instant::now(),
    })
}
