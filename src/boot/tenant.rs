use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde_json::{Value, json};

use crate::db::sessions::Session;

/// What an agent needs to run one tenant. Secrets stay wrapped until they are
/// written out.
pub struct TenantConfig {
    pub user_id: String,
    pub session_id: String,
    pub username: Option<String>,
    pub api_id: i32,
    pub api_hash: SecretString,
    pub phone: Option<SecretString>,
    /// The MTProto session blob, so an agent resumes without logging in again.
    pub session_data: Option<SecretSlice<u8>>,
    pub digital_twin_enabled: bool,
    pub auto_reply_enabled: bool,
    pub target_chats: Value,
}

impl From<Session> for TenantConfig {
    fn from(s: Session) -> Self {
        let m = s.meta;
        Self {
            user_id: m.user_id,
            session_id: m.session_id,
            username: m.username,
            api_id: m.api_id,
            api_hash: s.credentials.api_hash,
            phone: s.credentials.phone,
            session_data: s.credentials.session_data,
            digital_twin_enabled: m.digital_twin_enabled,
            auto_reply_enabled: m.auto_reply_enabled,
            target_chats: m.target_chats,
        }
    }
}

impl TenantConfig {
    /// The variables an agent reads, in a fixed order. Absent values are
    /// empty strings, so an `eval` also clears stale ones.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TELEGRAM_SESSION_ID", self.session_id.clone()),
            ("TELEGRAM_API_ID", self.api_id.to_string()),
            (
                "TELEGRAM_API_HASH",
                self.api_hash.expose_secret().to_owned(),
            ),
            (
                "TELEGRAM_PHONE",
                self.phone
                    .as_ref()
                    .map(|p| p.expose_secret().to_owned())
                    .unwrap_or_default(),
            ),
            (
                "TELEGRAM_SESSION_DATA",
                self.session_data_base64().unwrap_or_default(),
            ),
            ("VIBEE_USER_ID", self.user_id.clone()),
            (
                "VIBEE_DIGITAL_TWIN_ENABLED",
                self.digital_twin_enabled.to_string(),
            ),
            (
                "VIBEE_AUTO_REPLY_ENABLED",
                self.auto_reply_enabled.to_string(),
            ),
            ("VIBEE_TARGET_CHATS", self.target_chats.to_string()),
        ]
    }

    fn session_data_base64(&self) -> Option<String> {
        self.session_data
            .as_ref()
            .map(|d| BASE64.encode(d.expose_secret()))
    }

    /// One element of the `--format json` array.
    pub fn to_json(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "session_id": self.session_id,
            "username": self.username,
            "api_id": self.api_id,
            "api_hash": self.api_hash.expose_secret(),
            "phone": self.phone.as_ref().map(|p| p.expose_secret()),
            "session_data": self.session_data_base64(),
            "digital_twin_enabled": self.digital_twin_enabled,
            "auto_reply_enabled": self.auto_reply_enabled,
            "target_chats": self.target_chats,
        })
    }
}
