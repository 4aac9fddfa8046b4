//! What a session is: its metadata row, its credentials, and the inputs of
//! a create-or-update and of a partial update (each validated here).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::DataKeyId;
use crate::db::schema::user_sessions;
use crate::domain::validate::{self, Invalid};

/// Which key names a session: its tenant (`user_id`) or its own id
/// (`session_id`). Both are unique; the API keeps the two apart by route.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    UserId(&'a str),
    SessionId(&'a str),
}

impl By<'_> {
    pub(super) fn query(self) -> user_sessions::BoxedQuery<'static, diesel::pg::Pg> {
        let all = user_sessions::table.into_boxed();
        match self {
            By::UserId(id) => all.filter(user_sessions::user_id.eq(id.to_owned())),
            By::SessionId(id) => all.filter(user_sessions::session_id.eq(id.to_owned())),
        }
    }
}

/// The version a conditional write (`If-Match`) expects: `None` writes
/// unconditionally; `Some(list)` only when the current version is in it.
pub type Expected<'a> = Option<&'a [i64]>;

/// What every write checks on the locked row: the session is active, and at
/// the version the write expects.
pub(super) fn check_writable(
    is_active: bool,
    version: i64,
    expected: Expected<'_>,
) -> Result<(), crate::db::DbError> {
    if !is_active {
        return Err(crate::db::DbError::Inactive);
    }
    match expected {
        Some(list) if !list.contains(&version) => {
            Err(crate::db::DbError::VersionMismatch { current: version })
        }
        _ => Ok(()),
    }
}

/// Everything about a session but its secrets.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = user_sessions)]
pub struct SessionMeta {
    pub id: Uuid,
    pub user_id: String,
    pub session_id: String,
    pub username: Option<String>,
    pub api_id: i32,
    #[schema(value_type = i32)]
    pub data_key_id: DataKeyId,
    pub is_active: bool,
    pub is_authorized: bool,
    pub digital_twin_enabled: bool,
    pub auto_reply_enabled: bool,
    #[schema(value_type = Vec<crate::domain::validate::ChatRef>)]
    pub target_chats: Value,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[diesel(select_expression = user_sessions::phone_encrypted.is_not_null())]
    #[diesel(select_expression_type = diesel::dsl::IsNotNull<user_sessions::phone_encrypted>)]
    pub has_phone: bool,
    #[diesel(select_expression = user_sessions::session_data_encrypted.is_not_null())]
    #[diesel(select_expression_type = diesel::dsl::IsNotNull<user_sessions::session_data_encrypted>)]
    pub has_session_data: bool,
}

/// The sealed columns of one row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = user_sessions)]
pub(super) struct SealedRow {
    pub(super) id: Uuid,
    /// The lookup keys: bound into every ciphertext (format v2).
    pub(super) user_id: String,
    pub(super) session_id: String,
    pub(super) is_active: bool,
    pub(super) version: i64,
    pub(super) api_hash_encrypted: Vec<u8>,
    pub(super) phone_encrypted: Option<Vec<u8>>,
    pub(super) session_data_encrypted: Option<Vec<u8>>,
    pub(super) data_key_id: DataKeyId,
}

/// The decrypted credentials of a session.
pub struct Credentials {
    pub api_hash: SecretString,
    pub phone: Option<SecretString>,
    pub session_data: Option<SecretSlice<u8>>,
}

pub struct Session {
    pub meta: SessionMeta,
    pub credentials: Credentials,
}

/// A create-or-update by `user_id`. `api_id` and `api_hash` are always
/// written; every other field left `None` keeps its stored value (or its
/// default on create).
#[derive(Default)]
pub struct SessionInput {
    pub user_id: String,
    pub session_id: Option<String>,
    pub username: Option<String>,
    pub api_id: i32,
    pub api_hash: SecretString,
    pub phone: Option<SecretString>,
    pub session_data: Option<SecretSlice<u8>>,
    pub is_authorized: Option<bool>,
    pub digital_twin_enabled: Option<bool>,
    pub auto_reply_enabled: Option<bool>,
    pub target_chats: Option<Value>,
}

/// What a conditional upsert requires of the stored session (RFC 9110).
#[derive(Debug, Clone, Copy, Default)]
pub enum Condition<'a> {
    /// Create or update.
    #[default]
    Any,
    /// `If-None-Match: *`: create only; an existing session is 412.
    Absent,
    /// `If-Match`: update only a session at one of these versions.
    Version(&'a [i64]),
}

pub enum Upserted {
    Created(SessionMeta),
    Updated(SessionMeta),
}

impl Upserted {
    pub fn meta(&self) -> &SessionMeta {
        match self {
            Upserted::Created(m) | Upserted::Updated(m) => m,
        }
    }
}

/// The non-secret fields a partial update may change. `None` leaves a field
/// alone; `Some(None)` clears a nullable one.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = user_sessions)]
pub struct SessionPatch {
    pub username: Option<Option<String>>,
    pub is_authorized: Option<bool>,
    pub digital_twin_enabled: Option<bool>,
    pub auto_reply_enabled: Option<bool>,
    pub target_chats: Option<Value>,
    pub last_seen_at: Option<Option<DateTime<Utc>>>,
}

impl SessionPatch {
    pub(super) fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                names.push(name)
            }
        };
        add(self.username.is_some(), "username");
        add(self.is_authorized.is_some(), "is_authorized");
        add(self.digital_twin_enabled.is_some(), "digital_twin_enabled");
        add(self.auto_reply_enabled.is_some(), "auto_reply_enabled");
        add(self.target_chats.is_some(), "target_chats");
        add(self.last_seen_at.is_some(), "last_seen_at");
        names
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.field_names().is_empty() {
            return Err(Invalid::new("body", "names no field to update"));
        }
        if let Some(Some(username)) = &self.username {
            validate::username(username)?;
        }
        if let Some(chats) = &self.target_chats {
            validate::target_chats(chats)?;
        }
        Ok(())
    }
}

impl SessionInput {
    /// Checks every field; the error names the first that is wrong.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate::identifier("user_id", &self.user_id)?;
        if let Some(session_id) = &self.session_id {
            validate::identifier("session_id", session_id)?;
        }
        if let Some(username) = &self.username {
            validate::username(username)?;
        }
        validate::api_id(self.api_id)?;
        validate::api_hash(self.api_hash.expose_secret())?;
        if let Some(phone) = &self.phone {
            validate::phone(phone.expose_secret())?;
        }
        if let Some(data) = &self.session_data {
            validate::session_data(data.expose_secret())?;
        }
        if let Some(chats) = &self.target_chats {
            validate::target_chats(chats)?;
        }
        Ok(())
    }

    pub(super) fn field_names(&self) -> Vec<&'static str> {
        let mut names = vec!["api_id", "api_hash"];
        let optional = [
            (self.session_id.is_some(), "session_id"),
            (self.username.is_some(), "username"),
            (self.phone.is_some(), "phone"),
            (self.session_data.is_some(), "session_data"),
            (self.is_authorized.is_some(), "is_authorized"),
            (self.digital_twin_enabled.is_some(), "digital_twin_enabled"),
            (self.auto_reply_enabled.is_some(), "auto_reply_enabled"),
            (self.target_chats.is_some(), "target_chats"),
        ];
        names.extend(optional.iter().filter(|(set, _)| *set).map(|(_, n)| *n));
        names
    }
}

/// Which sessions a listing returns, and where a page starts.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: i64,
    /// The last `user_id` of the previous page.
    pub after: Option<String>,
    pub include_inactive: bool,
    pub is_authorized: Option<bool>,
    /// Only the session of this tenant (a page of at most one).
    pub user_id: Option<String>,
    /// Only sessions whose user_id, session_id or username contains this
    /// (case-insensitive; `%` and `_` are literal).
    pub search: Option<String>,
    /// Only active (true) or deactivated (false) sessions; overrides
    /// `include_inactive`.
    pub is_active: Option<bool>,
    /// Only sessions held by a live lease (true) or free (false).
    pub held: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub sessions: Vec<SessionMeta>,
    pub next_cursor: Option<String>,
}

/// The largest page a listing (sessions, the audit trail, the boot loader)
/// returns.
pub const MAX_PAGE: i64 = 1000;
/// The page size of a listing that names none.
pub const DEFAULT_PAGE: i64 = 100;
