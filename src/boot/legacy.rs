//! Legacy mode: the client's own `TELEGRAM_*` variables, passed through
//! unchanged (the original never checked them), with no database and no
//! master key involved.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{SecretSlice, SecretString};
use serde_json::Value;

use crate::config::Env;

use super::{BootError, TenantConfig};

fn required(env: &dyn Env, name: &str) -> Result<String, BootError> {
    env.get(name).ok_or_else(|| {
        BootError::Config(format!(
            "{name} is not set. Without MULTI_TENANT=true or USER_ID the boot loader \
             runs in legacy mode, which needs TELEGRAM_SESSION_ID, TELEGRAM_API_ID and \
             TELEGRAM_API_HASH"
        ))
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
    let session_id = required(env, "TELEGRAM_SESSION_ID")?;
    let api_id_text = required(env, "TELEGRAM_API_ID")?;
    let api_hash = SecretString::from(required(env, "TELEGRAM_API_HASH")?);
    let api_id = api_id_text
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| BootError::Data("TELEGRAM_API_ID must be a positive integer".into()))?;
    let session_data = env
        .get("TELEGRAM_SESSION_DATA")
        .map(|b64| {
            BASE64
                .decode(b64.trim())
                .map(SecretSlice::from)
                .map_err(|_| BootError::Data("TELEGRAM_SESSION_DATA must be base64".into()))
        })
        .transpose()?;
    let target_chats = match env.get("VIBEE_TARGET_CHATS") {
        None => Value::Array(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|_| BootError::Data("VIBEE_TARGET_CHATS must be a JSON array".into()))?,
    };
    Ok(TenantConfig {
        // A legacy client is known by its session id alone (as import-env
        // records it when USER_ID is not set).
        user_id: session_id.clone(),
        session_id,
        username: env.get("TELEGRAM_USERNAME"),
        api_id,
        api_hash,
        phone: env.get("TELEGRAM_PHONE").map(SecretString::from),
        session_data,
        digital_twin_enabled: flag(env, "VIBEE_DIGITAL_TWIN_ENABLED")?,
        auto_reply_enabled: flag(env, "VIBEE_AUTO_REPLY_ENABLED")?,
        target_chats,
    })
}
