//! Field rules shared by every way in (REST, CLI, import): the error names the
//! field and what is wrong with it, never its value.

use serde_json::Value;

/// A field that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

pub const MAX_IDENTIFIER_LEN: usize = 128;
pub const MAX_USERNAME_LEN: usize = 256;
/// The largest session blob. MTProto auth keys are a few hundred bytes, but
/// bridges store whole session files: a Telethon SQLite session of a real
/// account with ~800 cached entities is ~69 KiB, Pyrogram's and gotd's more
/// or less as large. 1 MiB leaves room for ten times that, and a body of
/// that size goes to the sealer in one buffer (no copy per step), so the cap
/// costs little memory per request.
pub const MAX_SESSION_DATA_LEN: usize = 1024 * 1024;
pub const MAX_TARGET_CHATS: usize = 1000;

/// `user_id` and `session_id`: they appear in URL paths and logs, so they are
/// kept to a plain alphabet.
pub fn identifier(field: &'static str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(Invalid::new(
            field,
            format!("must be at most {MAX_IDENTIFIER_LEN} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
        || value.starts_with('.')
    {
        return Err(Invalid::new(
            field,
            "may hold only letters, digits and _ - . : @, and must not start with .",
        ));
    }
    Ok(())
}

pub fn username(value: &str) -> Result<(), Invalid> {
    if value.chars().count() > MAX_USERNAME_LEN {
        return Err(Invalid::new(
            "username",
            format!("must be at most {MAX_USERNAME_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(
            "username",
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub fn api_id(value: i32) -> Result<(), Invalid> {
    if value <= 0 {
        return Err(Invalid::new("api_id", "must be a positive integer"));
    }
    Ok(())
}

/// Telegram issues api_hash as 32 hexadecimal characters.
pub fn api_hash(value: &str) -> Result<(), Invalid> {
    if value.len() != 32 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Invalid::new(
            "api_hash",
            "must be 32 hexadecimal characters, as Telegram issues it",
        ));
    }
    Ok(())
}

/// E.164: a plus sign and 7 to 15 digits.
pub fn phone(value: &str) -> Result<(), Invalid> {
    let digits = value.strip_prefix('+').unwrap_or("");
    if !(7..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(Invalid::new(
            "phone",
            "must be in E.164 form: + and 7 to 15 digits, e.g. +15551234567",
        ));
    }
    Ok(())
}

pub fn session_data(value: &[u8]) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(
            "session_data",
            "must not be empty (omit it instead)",
        ));
    }
    if value.len() > MAX_SESSION_DATA_LEN {
        return Err(Invalid::new(
            "session_data",
            format!("must be at most {MAX_SESSION_DATA_LEN} bytes"),
        ));
    }
    Ok(())
}

/// One item of `target_chats`, as the API documents it: a chat id or a name.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ChatRef {
    /// A chat id (Telegram's, may be negative).
    Id(i64),
    /// A chat name, e.g. `@channel`: 1-256 characters, no control characters.
    Name(String),
}

/// An array of chat ids (integers) or usernames (strings).
pub fn target_chats(value: &Value) -> Result<(), Invalid> {
    let Value::Array(items) = value else {
        return Err(Invalid::new("target_chats", "must be an array"));
    };
    if items.len() > MAX_TARGET_CHATS {
        return Err(Invalid::new(
            "target_chats",
            format!("must hold at most {MAX_TARGET_CHATS} chats"),
        ));
    }
    for item in items {
        match item {
            Value::Number(n) if n.is_i64() => {}
            Value::String(s)
                if !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control) => {}
            _ => {
                return Err(Invalid::new(
                    "target_chats",
                    "must hold chat ids (integers) or chat names (non-empty strings of at most 256 characters)",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers() {
        assert!(identifier("user_id", "tenant-42").is_ok());
        assert!(identifier("user_id", "144022504").is_ok());
        for bad in [
            "",
            "../etc",
            "a/b",
            "a b",
            "a\0b",
            ".hidden",
            "a%00",
            &"x".repeat(129),
        ] {
            let e = identifier("user_id", bad).unwrap_err();
            assert_eq!(e.field, "user_id", "{bad:?}");
        }
    }

    #[test]
    fn telegram_fields() {
        assert!(api_hash("0123456789abcdef0123456789ABCDEF").is_ok());
        assert!(api_hash("0123456789abcdef0123456789abcde").is_err());
        assert!(api_hash("0123456789abcdef0123456789abcdeg").is_err());
        assert!(phone("+15551234567").is_ok());
        for bad in [
            "15551234567",
            "+1",
            "+0123456789",
            "+1555 123",
            "+1234567890123456",
        ] {
            assert!(phone(bad).is_err(), "{bad}");
        }
        assert!(api_id(1).is_ok());
        assert!(api_id(0).is_err());
        assert!(api_id(-5).is_err());
    }

    #[test]
    fn chats_and_blobs() {
        assert!(target_chats(&json!([1, -100123, "@chan"])).is_ok());
        assert!(target_chats(&json!({"a": 1})).is_err());
        assert!(target_chats(&json!([1.5])).is_err());
        assert!(target_chats(&json!([""])).is_err());
        assert!(session_data(&[]).is_err());
        assert!(session_data(&vec![0; MAX_SESSION_DATA_LEN + 1]).is_err());
        assert!(session_data(&[1, 2, 3]).is_ok());
    }
}
