//! The transit master key's configuration, read the way the Vault/OpenBao
//! tools read theirs: `VAULT_ADDR` (or `BAO_ADDR`), `VAULT_CACERT`,
//! `VAULT_NAMESPACE`, a token (`VAULT_TOKEN`, `BAO_TOKEN`, `VAULT_TOKEN_FILE`)
//! or AppRole (`VAULT_ROLE_ID` + `VAULT_SECRET_ID_FILE`), and ours:
//! `MASTER_KEY_TRANSIT_KEY`, `MASTER_KEY_TRANSIT_MOUNT` (default `transit`),
//! `MASTER_KEY_TRANSIT_ENGINE` (the engine's name in the fingerprint).

use std::path::PathBuf;

use secrecy::SecretString;

use crate::crypto::KekId;
use crate::environment::Env;

pub const DEFAULT_MOUNT: &str = "transit";
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

/// How the service proves itself to the engine.
pub enum Credentials {
    /// A token given directly (`VAULT_TOKEN`/`BAO_TOKEN`), or kept in a file
    /// that is read again when the engine stops accepting the one we hold (a
    /// Vault/OpenBao agent rewrites its sink file on renewal).
    Token {
        token: Option<SecretString>,
        file: Option<PathBuf>,
    },
    /// AppRole: the role id, and the secret id read from a file at each login.
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id_file: PathBuf,
    },
}

/// Everything needed to reach one transit key.
pub struct TransitSettings {
    /// `scheme://authority`, no trailing slash.
    pub addr: String,
    pub ca_cert: Option<PathBuf>,
    pub namespace: Option<String>,
    pub mount: String,
    pub key: String,
    /// The engine's name in the fingerprint: `MASTER_KEY_TRANSIT_ENGINE`, or
    /// the authority (host:port) of the address.
    pub engine: String,
    pub credentials: Credentials,
}

/// A configuration problem; the message names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn bad(msg: impl Into<String>) -> SettingsError {
    SettingsError(msg.into())
}

/// Names of keys and mount segments as the engine allows them; anything else
/// would change the path we call (a `/`, `..`, `?`).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_path(s: &str) -> bool {
    s.split('/').all(valid_name)
}

/// Plain HTTP is accepted only to a loopback engine (a dev server, or an
/// agent on the same host); anything else must be HTTPS.
fn loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_addr(raw: &str, var: &str) -> Result<(String, String), SettingsError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| bad(format!("{var} must be an https:// URL, not {trimmed:?}")))?;
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad(format!(
            "{var} must be scheme://host:port with no path or user part, not {trimmed:?}"
        )));
    }
    match scheme {
        "https" => {}
        "http" if loopback(rest) => {}
        "http" => {
            return Err(bad(format!(
                "{var} is plain http:// to a host that is not loopback ({rest}); \
                 the engine must be reached over https:// (with VAULT_CACERT for a private CA)"
            )));
        }
        _ => {
            return Err(bad(format!(
                "{var} must be an https:// URL, not {trimmed:?}"
            )));
        }
    }
    Ok((format!("{scheme}://{rest}"), rest.to_owned()))
}

impl TransitSettings {
    /// Reads the settings; `key` is `MASTER_KEY_TRANSIT_KEY` (or the name
    /// given to `rotate-master --new-transit-key`).
    pub fn from_env(env: &dyn Env, key: &str, key_var: &str) -> Result<Self, SettingsError> {
        let (addr_var, raw_addr) = match (env.get("VAULT_ADDR"), env.get("BAO_ADDR")) {
            (Some(a), _) => ("VAULT_ADDR", a),
            (None, Some(a)) => ("BAO_ADDR", a),
            (None, None) => {
                return Err(bad(format!(
                    "{key_var} is set but VAULT_ADDR (or BAO_ADDR) is not: set it to the \
                     OpenBao/Vault server, e.g. https://vault.example:8200"
                )));
            }
        };
        let (addr, authority) = parse_addr(&raw_addr, addr_var)?;
        let key = key.trim().to_owned();
        if !valid_name(&key) {
            return Err(bad(format!(
                "{key_var} {key:?} is not a transit key name (letters, digits, - _ .)"
            )));
        }
        let mount = env
            .get("MASTER_KEY_TRANSIT_MOUNT")
            .map(|m| m.trim().trim_matches('/').to_owned())
            .unwrap_or_else(|| DEFAULT_MOUNT.to_owned());
        if !valid_path(&mount) {
            return Err(bad(format!(
                "MASTER_KEY_TRANSIT_MOUNT {mount:?} is not a mount path (segments of letters, digits, - _ . separated by /)"
            )));
        }
        let namespace = env
            .get("VAULT_NAMESPACE")
            .map(|n| n.trim().trim_matches('/').to_owned())
            .filter(|n| !n.is_empty());
        if let Some(ns) = &namespace
            && !valid_path(ns)
        {
            return Err(bad(format!(
                "VAULT_NAMESPACE {ns:?} is not a namespace path"
            )));
        }
        let engine = env
            .get("MASTER_KEY_TRANSIT_ENGINE")
            .map(|e| e.trim().to_owned())
            .unwrap_or(authority);
        if engine.is_empty() || engine.contains(char::is_whitespace) {
            return Err(bad(
                "MASTER_KEY_TRANSIT_ENGINE must be a name without spaces",
            ));
        }
        Ok(Self {
            addr,
            ca_cert: env.get("VAULT_CACERT").map(PathBuf::from),
            namespace,
            mount,
            key,
            engine,
            credentials: credentials(env)?,
        })
    }

    /// The same engine and credentials, another key (`--new-transit-key`).
    pub fn with_key(&self, env: &dyn Env, key: &str) -> Result<Self, SettingsError> {
        Self::from_env(env, key, "--new-transit-key")
    }

    /// The fingerprint stored beside every data key this key wraps: it names
    /// the engine, the namespace, the mount and the key, as the API path does.
    pub fn kek_id(&self) -> KekId {
        let ns = self
            .namespace
            .as_ref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        KekId::from_stored(format!(
            "transit://{}/{ns}{}/keys/{}",
            self.engine, self.mount, self.key
        ))
    }
}

fn credentials(env: &dyn Env) -> Result<Credentials, SettingsError> {
    let token = env
        .get("VAULT_TOKEN")
        .map(|_| "VAULT_TOKEN")
        .or_else(|| env.get("BAO_TOKEN").map(|_| "BAO_TOKEN"))
        .or_else(|| env.get("VAULT_TOKEN_FILE").map(|_| "VAULT_TOKEN_FILE"));
    let role = env.get("VAULT_ROLE_ID");
    match (token, role) {
        (Some(t), Some(_)) => Err(bad(format!(
            "both {t} and VAULT_ROLE_ID are set: authenticate to the engine with a token or \
             with AppRole, not both"
        ))),
        (Some(_), None) => {
            let token = env
                .get("VAULT_TOKEN")
                .or_else(|| env.get("BAO_TOKEN"))
                .map(|t| SecretString::from(t.trim().to_owned()));
            let file = env.get("VAULT_TOKEN_FILE").map(PathBuf::from);
            Ok(Credentials::Token { token, file })
        }
        (None, Some(role_id)) => {
            let secret_id_file = env.get("VAULT_SECRET_ID_FILE").ok_or_else(|| {
                bad(
                    "VAULT_ROLE_ID is set but VAULT_SECRET_ID_FILE is not: AppRole needs the \
                     file holding the secret id",
                )
            })?;
            let mount = env
                .get("VAULT_APPROLE_MOUNT")
                .map(|m| m.trim().trim_matches('/').to_owned())
                .unwrap_or_else(|| DEFAULT_APPROLE_MOUNT.to_owned());
            if !valid_path(&mount) {
                return Err(bad(format!(
                    "VAULT_APPROLE_MOUNT {mount:?} is not a mount path"
                )));
            }
            Ok(Credentials::AppRole {
                mount,
                role_id: SecretString::from(role_id.trim().to_owned()),
                secret_id_file: PathBuf::from(secret_id_file),
            })
        }
        (None, None) => Err(bad(
            "the transit master key needs credentials for the engine: VAULT_TOKEN (or \
             BAO_TOKEN, or VAULT_TOKEN_FILE), or AppRole with VAULT_ROLE_ID and \
             VAULT_SECRET_ID_FILE",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Env for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> Map {
        Map(pairs.iter().copied().collect())
    }

    #[test]
    fn fingerprint_names_engine_namespace_mount_and_key() {
        let e = env(&[
            ("VAULT_ADDR", "https://vault.example:8200/"),
            ("VAULT_TOKEN", "t"),
            ("VAULT_NAMESPACE", "team-a"),
            ("MASTER_KEY_TRANSIT_MOUNT", "kms/transit"),
        ]);
        let s = TransitSettings::from_env(&e, "vibee", "MASTER_KEY_TRANSIT_KEY").unwrap();
        assert_eq!(
            s.kek_id().as_str(),
            "transit://vault.example:8200/team-a/kms/transit/keys/vibee"
        );
        assert_eq!(s.addr, "https://vault.example:8200");
    }

    #[test]
    fn refuses_plain_http_off_loopback_and_bad_names() {
        let e = env(&[
            ("VAULT_ADDR", "http://vault.example:8200"),
            ("VAULT_TOKEN", "t"),
        ]);
        let err = TransitSettings::from_env(&e, "k", "MASTER_KEY_TRANSIT_KEY")
            .err()
            .unwrap();
        assert!(err.0.contains("https://"), "{err}");
        let e = env(&[("BAO_ADDR", "http://127.0.0.1:8200"), ("VAULT_TOKEN", "t")]);
        assert!(TransitSettings::from_env(&e, "k", "X").is_ok());
        assert!(TransitSettings::from_env(&e, "../k", "X").is_err());
        let e = env(&[("VAULT_ADDR", "http://[::1]:8200"), ("VAULT_TOKEN", "t")]);
        assert!(TransitSettings::from_env(&e, "k", "X").is_ok());
    }

    #[test]
    fn credentials_are_one_kind() {
        let e = env(&[
            ("VAULT_ADDR", "https://v:1"),
            ("VAULT_TOKEN", "t"),
            ("VAULT_ROLE_ID", "r"),
        ]);
        let err = TransitSettings::from_env(&e, "k", "X").err().unwrap();
        assert!(
            err.0.contains("VAULT_TOKEN") && err.0.contains("VAULT_ROLE_ID"),
            "{err}"
        );
        let e = env(&[("VAULT_ADDR", "https://v:1"), ("VAULT_ROLE_ID", "r")]);
        let err = TransitSettings::from_env(&e, "k", "X").err().unwrap();
        assert!(err.0.contains("VAULT_SECRET_ID_FILE"), "{err}");
        let e = env(&[("VAULT_ADDR", "https://v:1")]);
        assert!(TransitSettings::from_env(&e, "k", "X").is_err());
    }
}
