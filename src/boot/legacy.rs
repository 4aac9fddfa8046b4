//! The legacy `TELEGRAM_*` variables of one client, parsed in one place for
//! both of their readers: boot's legacy mode (the process environment, passed
//! through unchanged, no database and no master key) and `import-env` (a
//! tenant's `.env` file or the environment, moved into the store).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{SecretSlice, SecretString};
use serde_json::Value;

use crate::config::Env;

use super::{BootError, TenantConfig};

/// One legacy client. Each optional value keeps the name of the variable it
/// came from, so a later check can name it.
pub struct LegacyClient {
    pub session_id: String,
    pub api_id: i32,
    pub api_hash: SecretString,
    pub phone: Option<(&'static str, SecretString)>,
    pub username: Option<(&'static str, String)>,
    pub session_data: Option<SecretSlice<u8>>,
}

/// A legacy variable missing or breaking its rule (named, never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyError {
    Missing(&'static str),
    Invalid(&'static str, &'static str),
}

/// Where the variables are looked up, and under which names the optional
/// ones may appear (first set wins). `get` returns only non-empty values.
pub struct Names {
    pub phone: &'static [&'static str],
    pub username: &'static [&'static str],
}

/// `USERNAME` is the login name on many systems: read from a process
/// environment it would be taken for the Telegram username.
pub const PROCESS_NAMES: Names = Names {
    phone: &["TELEGRAM_PHONE"],
    username: &["TELEGRAM_USERNAME"],
};

pub fn parse(
    get: &dyn Fn(&str) -> Option<String>,
    names: &Names,
) -> Result<LegacyClient, LegacyError> {
    let required = |name: &'static str| get(name).ok_or(LegacyError::Missing(name));
    let first = |list: &'static [&'static str]| list.iter().find_map(|n| get(n).map(|v| (*n, v)));
    let session_id = required("TELEGRAM_SESSION_ID")?;
    let api_id = required("TELEGRAM_API_ID")?
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(LegacyError::Invalid(
            "TELEGRAM_API_ID",
            "must be a positive integer",
        ))?;
    let api_hash = SecretString::from(required("TELEGRAM_API_HASH")?);
    let session_data = get("TELEGRAM_SESSION_DATA")
        .map(|b64| {
            BASE64
                .decode(b64.trim())
                .map(SecretSlice::from)
                .map_err(|_| LegacyError::Invalid("TELEGRAM_SESSION_DATA", "must be base64"))
        })
        .transpose()?;
    Ok(LegacyClient {
        session_id,
        api_id,
        api_hash,
        phone: first(names.phone).map(|(n, v)| (n, SecretString::from(v))),
        username: first(names.username),
        session_data,
    })
}

fn flag(env: &dyn Env, name: &str) -> Result<bool, BootError> {
    match env.get(name).as_deref() {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(BootError::Data(format!("{name} must be true or false"))),
    }
}

pub fn from_env(env: &dyn Env) -> Result<TenantConfig, BootError> {
    let client = parse(&|n| env.get(n), &PROCESS_NAMES).map_err(|e| match e {
        LegacyError::Missing(name) => BootError::Config(format!(
            "{name} is not set. Without MULTI_TENANT=true or USER_ID the boot loader \
             runs in legacy mode, which needs TELEGRAM_SESSION_ID, TELEGRAM_API_ID and \
             TELEGRAM_API_HASH"
        )),
        LegacyError::Invalid(name, rule) => BootError::Data(format!("{name} {rule}")),
    })?;
    let target_chats = match env.get("VIBEE_TARGET_CHATS") {
        None => Value::Array(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|_| BootError::Data("VIBEE_TARGET_CHATS must be a JSON array".into()))?,
    };
    Ok(TenantConfig {
        // A legacy client is known by its session id alone (as import-env
        // records it when USER_ID is not set).
        user_id: client.session_id.clone(),
        session_id: client.session_id,
        username: client.username.map(|(_, u)| u),
        api_id: client.api_id,
        api_hash: client.api_hash,
        phone: client.phone.map(|(_, p)| p),
        session_data: client.session_data,
        digital_twin_enabled: flag(env, "VIBEE_DIGITAL_TWIN_ENABLED")?,
        auto_reply_enabled: flag(env, "VIBEE_AUTO_REPLY_ENABLED")?,
        target_chats,
    })
}
