//! The session store. Every secret column is sealed under the primary data
//! key, bound to its table, column and row id; every change writes its audit
//! row in the same transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::TryFutureExt;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{DataKeyId, FieldRef, KeyRing, random_hex};

use super::activity::{self, ActivityType, AuditContext, Event};
use super::error::DbError;
use super::keys::Vault;
use super::schema::user_sessions;
use super::validate::{self, Invalid};

mod boot_load;
pub use boot_load::{BootPage, BootSelection, load_for_boot};

pub const TABLE: &str = "user_sessions";
const API_HASH: &str = "api_hash_encrypted";
const PHONE: &str = "phone_encrypted";
const SESSION_DATA: &str = "session_data_encrypted";
/// How many sealed columns a row has: the encryptions one write may make.
const SEALED_COLUMNS: u64 = 3;

/// Which key names a session: its tenant (`user_id`) or its own id
/// (`session_id`). Both are unique; the API keeps the two apart by route.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    UserId(&'a str),
    SessionId(&'a str),
}

impl By<'_> {
    fn query(self) -> user_sessions::BoxedQuery<'static, diesel::pg::Pg> {
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

fn check_writable(is_active: bool, version: i64, expected: Expected<'_>) -> Result<(), DbError> {
    if !is_active {
        return Err(DbError::Inactive);
    }
    match expected {
        Some(list) if !list.contains(&version) => {
            Err(DbError::VersionMismatch { current: version })
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
    pub data_key_id: i32,
    pub is_active: bool,
    pub is_authorized: bool,
    pub digital_twin_enabled: bool,
    pub auto_reply_enabled: bool,
    #[schema(value_type = Vec<super::validate::ChatRef>)]
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
struct SealedRow {
    id: Uuid,
    is_active: bool,
    version: i64,
    api_hash_encrypted: Vec<u8>,
    phone_encrypted: Option<Vec<u8>>,
    session_data_encrypted: Option<Vec<u8>>,
    data_key_id: i32,
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
    fn field_names(&self) -> Vec<&'static str> {
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

    fn field_names(&self) -> Vec<&'static str> {
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

/// Plaintexts of one row, zeroized on drop.
struct Plain {
    api_hash: Zeroizing<Vec<u8>>,
    phone: Option<Zeroizing<Vec<u8>>>,
    session_data: Option<Zeroizing<Vec<u8>>>,
}

struct Sealed {
    api_hash: Vec<u8>,
    phone: Option<Vec<u8>>,
    session_data: Option<Vec<u8>>,
    data_key_id: i32,
}

fn key_column_id(id: DataKeyId) -> i32 {
    i32::try_from(id.0).expect("data key ids come from an integer column")
}

fn seal_row(ring: &KeyRing, row_id: Uuid, plain: &Plain) -> Sealed {
    let seal =
        |column, bytes: &[u8]| ring.seal(&FieldRef::new(TABLE, column, row_id.as_bytes()), bytes);
    Sealed {
        api_hash: seal(API_HASH, &plain.api_hash),
        phone: plain.phone.as_ref().map(|p| seal(PHONE, p)),
        session_data: plain.session_data.as_ref().map(|d| seal(SESSION_DATA, d)),
        data_key_id: key_column_id(ring.primary_id()),
    }
}

fn open_field(
    ring: &KeyRing,
    row_id: Uuid,
    column: &'static str,
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DbError> {
    let opened = ring.open(&FieldRef::new(TABLE, column, row_id.as_bytes()), stored);
    metrics::counter!("vibee_decryptions_total").increment(1);
    opened.map_err(|_| {
            metrics::counter!("vibee_integrity_failures_total").increment(1);
            // Where, never what: the value itself stays out of the log.
            tracing::error!(table = TABLE, column, row_id = %row_id, "stored value failed to decrypt: integrity error");
            DbError::Integrity {
                table: TABLE,
                column,
            }
        })
}

/// A ring that holds the row's key, reloading once when the row names a key
/// this process has not loaded yet (another replica rotated).
async fn ring_for(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    row: &SealedRow,
) -> Result<Arc<KeyRing>, DbError> {
    let ring = vault.ring();
    let id = DataKeyId(u32::try_from(row.data_key_id).unwrap_or(0));
    if ring.contains(id) {
        return Ok(ring);
    }
    tracing::info!(
        data_key_id = row.data_key_id,
        "row under a data key not yet loaded; reloading the key ring"
    );
    vault.reload(conn).await
}

fn open_row(ring: &KeyRing, row: &SealedRow) -> Result<Plain, DbError> {
    Ok(Plain {
        api_hash: open_field(ring, row.id, API_HASH, &row.api_hash_encrypted)?,
        phone: row
            .phone_encrypted
            .as_deref()
            .map(|p| open_field(ring, row.id, PHONE, p))
            .transpose()?,
        session_data: row
            .session_data_encrypted
            .as_deref()
            .map(|d| open_field(ring, row.id, SESSION_DATA, d))
            .transpose()?,
    })
}

/// New plaintexts for a row's sealed columns: `None` keeps the stored value,
/// `Some(None)` clears a nullable one.
#[derive(Default)]
struct Replacement {
    api_hash: Option<Zeroizing<Vec<u8>>>,
    phone: Option<Option<Zeroizing<Vec<u8>>>>,
    session_data: Option<Option<Zeroizing<Vec<u8>>>>,
}

/// The row's plaintexts after `new` is applied. Only the values kept are
/// decrypted: a write that replaces a value that fails its integrity check
/// (or replaces every value) never needs to read it, so it is how such a row
/// is repaired.
async fn merge(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    row: &SealedRow,
    new: Replacement,
) -> Result<Plain, DbError> {
    let opens = new.api_hash.is_none()
        || (new.phone.is_none() && row.phone_encrypted.is_some())
        || (new.session_data.is_none() && row.session_data_encrypted.is_some());
    let ring = if opens {
        Some(ring_for(conn, vault, row).await?)
    } else {
        None
    };
    let open = |column, stored: &[u8]| match &ring {
        Some(ring) => open_field(ring, row.id, column, stored),
        None => unreachable!("a kept value is opened only when a ring was loaded"),
    };
    Ok(Plain {
        api_hash: match new.api_hash {
            Some(v) => v,
            None => open(API_HASH, &row.api_hash_encrypted)?,
        },
        phone: match new.phone {
            Some(v) => v,
            None => row
                .phone_encrypted
                .as_deref()
                .map(|p| open(PHONE, p))
                .transpose()?,
        },
        session_data: match new.session_data {
            Some(v) => v,
            None => row
                .session_data_encrypted
                .as_deref()
                .map(|d| open(SESSION_DATA, d))
                .transpose()?,
        },
    })
}

fn to_string(bytes: Zeroizing<Vec<u8>>, column: &'static str) -> Result<SecretString, DbError> {
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| DbError::Integrity {
        table: TABLE,
        column,
    })?;
    Ok(SecretString::from(text))
}

fn credentials(plain: Plain) -> Result<Credentials, DbError> {
    Ok(Credentials {
        api_hash: to_string(plain.api_hash, API_HASH)?,
        phone: plain.phone.map(|p| to_string(p, PHONE)).transpose()?,
        session_data: plain.session_data.map(|d| SecretSlice::from(d.to_vec())),
    })
}

fn secret_bytes(s: &SecretString) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.expose_secret().as_bytes().to_vec())
}

fn slice_bytes(s: &SecretSlice<u8>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.expose_secret().to_vec())
}

/// Creates the session of `input.user_id`, or updates it. Two concurrent
/// upserts of one `user_id` give one row and no error.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    input: &SessionInput,
) -> Result<Upserted, DbError> {
    input.validate()?;
    let seal_ring = vault.reserve(conn, SEALED_COLUMNS).await?;
    conn.transaction::<_, DbError, _>(async |conn| {
            // An insert that loses a race to a concurrent insert of the same
            // user_id finds nothing to return; the next pass updates that row.
            for _ in 0..3 {
                let existing = user_sessions::table
                    .filter(user_sessions::user_id.eq(&input.user_id))
                    .select((SealedRow::as_select(), user_sessions::session_id))
                    .for_update()
                    .first::<(SealedRow, String)>(conn)
                    .await
                    .optional()?;
                if let Some((row, stored_session_id)) = existing {
                    check_writable(row.is_active, row.version, None)?;
                    let meta = update_existing(conn, vault, &seal_ring, ctx, input, &row, &stored_session_id).await?;
                    return Ok(Upserted::Updated(meta));
                }
                if let Some(meta) = insert_new(conn, &seal_ring, input).await? {
                    activity::record(conn, ctx, Event {
                        kind: ActivityType::SessionCreated,
                        session_id: Some(&meta.session_id),
                        user_id: Some(&meta.user_id),
                        details: json!({ "fields": input.field_names(), "data_key_id": meta.data_key_id }),
                    })
                    .await?;
                    return Ok(Upserted::Created(meta));
                }
            }
            Err(DbError::Unavailable(
                "the session kept changing under a concurrent writer; retry".into(),
            ))
        })
    .await
}

async fn insert_new(
    conn: &mut AsyncPgConnection,
    ring: &KeyRing,
    input: &SessionInput,
) -> Result<Option<SessionMeta>, DbError> {
    // Random (v4), not time-ordered: the id says nothing about when it was made.
    let id = Uuid::new_v4();
    let session_id = input.session_id.clone().unwrap_or_else(|| random_hex(16));
    let sealed = seal_row(
        ring,
        id,
        &Plain {
            api_hash: secret_bytes(&input.api_hash),
            phone: input.phone.as_ref().map(secret_bytes),
            session_data: input.session_data.as_ref().map(slice_bytes),
        },
    );
    Ok(diesel::insert_into(user_sessions::table)
        .values((
            user_sessions::id.eq(id),
            user_sessions::user_id.eq(&input.user_id),
            user_sessions::session_id.eq(&session_id),
            user_sessions::username.eq(&input.username),
            user_sessions::api_id.eq(input.api_id),
            user_sessions::api_hash_encrypted.eq(&sealed.api_hash),
            user_sessions::phone_encrypted.eq(&sealed.phone),
            user_sessions::session_data_encrypted.eq(&sealed.session_data),
            user_sessions::data_key_id.eq(sealed.data_key_id),
            user_sessions::is_authorized.eq(input.is_authorized.unwrap_or(false)),
            user_sessions::digital_twin_enabled.eq(input.digital_twin_enabled.unwrap_or(false)),
            user_sessions::auto_reply_enabled.eq(input.auto_reply_enabled.unwrap_or(false)),
            user_sessions::target_chats.eq(input.target_chats.clone().unwrap_or_else(|| json!([]))),
        ))
        .on_conflict(user_sessions::user_id)
        .do_nothing()
        .returning(SessionMeta::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// Re-seals and updates a locked row, and writes its audit row in the same
/// round trip (the two statements are pipelined; the transaction around them
/// still commits both or neither).
async fn update_existing(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    seal_ring: &KeyRing,
    ctx: &AuditContext,
    input: &SessionInput,
    row: &SealedRow,
    stored_session_id: &str,
) -> Result<SessionMeta, DbError> {
    // Every ciphertext of a row is under the row's one data key, so fields
    // not being replaced are re-sealed under the primary too.
    let new = Replacement {
        api_hash: Some(secret_bytes(&input.api_hash)),
        phone: input.phone.as_ref().map(|p| Some(secret_bytes(p))),
        session_data: input.session_data.as_ref().map(|d| Some(slice_bytes(d))),
    };
    let plain = merge(conn, vault, row, new).await?;
    let sealed = seal_row(seal_ring, row.id, &plain);
    let optional = OptionalFields {
        session_id: input.session_id.as_deref(),
        username: input.username.as_deref(),
        is_authorized: input.is_authorized,
        digital_twin_enabled: input.digital_twin_enabled,
        auto_reply_enabled: input.auto_reply_enabled,
        target_chats: input.target_chats.as_ref(),
    };
    let event = Event {
        kind: ActivityType::SessionUpdated,
        session_id: Some(input.session_id.as_deref().unwrap_or(stored_session_id)),
        user_id: Some(&input.user_id),
        details: json!({ "fields": input.field_names(), "data_key_id": sealed.data_key_id }),
    };
    let shared: &AsyncPgConnection = conn;
    let (mut for_update, mut for_audit) = (shared, shared);
    let update = diesel::update(user_sessions::table.find(row.id))
        .set((
            optional,
            user_sessions::api_id.eq(input.api_id),
            user_sessions::api_hash_encrypted.eq(&sealed.api_hash),
            user_sessions::phone_encrypted.eq(&sealed.phone),
            user_sessions::session_data_encrypted.eq(&sealed.session_data),
            user_sessions::data_key_id.eq(sealed.data_key_id),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SessionMeta::as_returning())
        .get_result::<SessionMeta>(&mut for_update)
        .map_err(DbError::from);
    let audit = activity::record_pipelined(&mut for_audit, ctx, event);
    // Answers come back in order: a failed UPDATE (say, a session_id taken)
    // is the error reported, not the INSERT it aborted.
    let (meta, ()) = futures_util::future::try_join(update, audit).await?;
    Ok(meta)
}

/// The upsert's optional plain fields: the ones left `None` keep their values.
#[derive(AsChangeset)]
#[diesel(table_name = user_sessions)]
struct OptionalFields<'a> {
    session_id: Option<&'a str>,
    username: Option<&'a str>,
    is_authorized: Option<bool>,
    digital_twin_enabled: Option<bool>,
    auto_reply_enabled: Option<bool>,
    target_chats: Option<&'a Value>,
}

/// One session with its decrypted credentials: an audited read, the audit
/// row written before this returns.
pub async fn get_credentials(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    user_id: &str,
) -> Result<Session, DbError> {
    let session = read_credentials(conn, vault, By::UserId(user_id)).await?;
    activity::record(conn, ctx, credentials_read_event(&session.meta)).await?;
    Ok(session)
}

/// One session with its decrypted credentials, NOT audited: the caller must
/// record `credentials_read_event` before handing them out (the API does it
/// through the audit queue). A deactivated session is `DbError::Inactive`,
/// and nothing of it is decrypted.
pub async fn read_credentials(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    by: By<'_>,
) -> Result<Session, DbError> {
    let (meta, row) = by
        .query()
        .select((SessionMeta::as_select(), SealedRow::as_select()))
        .first::<(SessionMeta, SealedRow)>(conn)
        .await?;
    if !meta.is_active {
        return Err(DbError::Inactive);
    }
    let ring = ring_for(conn, vault, &row).await?;
    let credentials = credentials(open_row(&ring, &row)?)?;
    Ok(Session { meta, credentials })
}

/// The audit event of a credentials read.
pub fn credentials_read_event(meta: &SessionMeta) -> Event<'_> {
    Event {
        kind: ActivityType::CredentialsRead,
        session_id: Some(&meta.session_id),
        user_id: Some(&meta.user_id),
        details: json!({ "fields": ["api_hash", "phone", "session_data"] }),
    }
}

/// Metadata of one session; no secret, not audited.
pub async fn get_meta(conn: &mut AsyncPgConnection, user_id: &str) -> Result<SessionMeta, DbError> {
    meta(conn, By::UserId(user_id)).await
}

/// Metadata of one session, by either key; no secret, not audited.
pub async fn meta(conn: &mut AsyncPgConnection, by: By<'_>) -> Result<SessionMeta, DbError> {
    meta_in(conn, by).await
}

async fn meta_in(conn: &mut AsyncPgConnection, by: By<'_>) -> Result<SessionMeta, DbError> {
    Ok(by
        .query()
        .select(SessionMeta::as_select())
        .first(conn)
        .await?)
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
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub sessions: Vec<SessionMeta>,
    pub next_cursor: Option<String>,
}

pub const MAX_PAGE: i64 = 1000;

/// Sessions in `user_id` order, a page at a time (keyset pagination: stable
/// under concurrent inserts, and as fast on the last page as on the first).
pub async fn list(conn: &mut AsyncPgConnection, q: &ListQuery) -> Result<Page, DbError> {
    let limit = q.limit.clamp(1, MAX_PAGE);
    let mut query = user_sessions::table
        .select(SessionMeta::as_select())
        .order(user_sessions::user_id)
        .limit(limit + 1)
        .into_boxed();
    if !q.include_inactive {
        query = query.filter(user_sessions::is_active.eq(true));
    }
    if let Some(authorized) = q.is_authorized {
        query = query.filter(user_sessions::is_authorized.eq(authorized));
    }
    if let Some(after) = &q.after {
        query = query.filter(user_sessions::user_id.gt(after));
    }
    if let Some(user_id) = &q.user_id {
        query = query.filter(user_sessions::user_id.eq(user_id));
    }
    let mut sessions: Vec<SessionMeta> = query.load(conn).await?;
    let next_cursor = if sessions.len() as i64 > limit {
        sessions.truncate(limit as usize);
        sessions.last().map(|s| s.user_id.clone())
    } else {
        None
    };
    Ok(Page {
        sessions,
        next_cursor,
    })
}

/// Marks a session inactive. Idempotent: `Ok(false)` when it already was.
pub async fn deactivate(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
) -> Result<bool, DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let changed = diesel::update(
            user_sessions::table
                .filter(user_sessions::session_id.eq(session_id))
                .filter(user_sessions::is_active.eq(true)),
        )
        .set((
            user_sessions::is_active.eq(false),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(user_sessions::user_id)
        .get_result::<String>(conn)
        .await
        .optional()?;
        let Some(user_id) = changed else {
            // Already inactive, or no such session: only the latter is an error.
            user_sessions::table
                .filter(user_sessions::session_id.eq(session_id))
                .select(user_sessions::id)
                .first::<Uuid>(conn)
                .await?;
            return Ok(false);
        };
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionDeactivated,
                session_id: Some(session_id),
                user_id: Some(&user_id),
                details: json!({}),
            },
        )
        .await?;
        Ok(true)
    })
    .await
}

/// Deletes a session row for good. The audit trail stays.
pub async fn purge(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
) -> Result<(), DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let user_id =
            diesel::delete(user_sessions::table.filter(user_sessions::session_id.eq(session_id)))
                .returning(user_sessions::user_id)
                .get_result::<String>(conn)
                .await?;
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionPurged,
                session_id: Some(session_id),
                user_id: Some(&user_id),
                details: json!({}),
            },
        )
        .await
    })
    .await
}

/// The row a write is about, locked, after the checks every write makes:
/// it exists, it is active, and it is at the version the write expects.
async fn lock_writable(
    conn: &mut AsyncPgConnection,
    by: By<'_>,
    expected: Expected<'_>,
) -> Result<SealedRow, DbError> {
    // Not boxed: diesel cannot lock a boxed query.
    let locked = user_sessions::table
        .select(SealedRow::as_select())
        .for_update();
    let row: SealedRow = match by {
        By::UserId(id) => {
            locked
                .filter(user_sessions::user_id.eq(id))
                .first(conn)
                .await?
        }
        By::SessionId(id) => {
            locked
                .filter(user_sessions::session_id.eq(id))
                .first(conn)
                .await?
        }
    };
    check_writable(row.is_active, row.version, expected)?;
    Ok(row)
}

/// Changes non-secret fields of an active session.
pub async fn update_metadata(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    by: By<'_>,
    patch: &SessionPatch,
    expected: Expected<'_>,
) -> Result<SessionMeta, DbError> {
    patch.validate()?;
    conn.transaction::<_, DbError, _>(async |conn| {
        let row = lock_writable(conn, by, expected).await?;
        let meta = diesel::update(user_sessions::table.find(row.id))
            .set((
                patch.clone(),
                user_sessions::version.eq(user_sessions::version + 1),
                user_sessions::updated_at.eq(diesel::dsl::now),
            ))
            .returning(SessionMeta::as_returning())
            .get_result(conn)
            .await?;
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionUpdated,
                session_id: Some(&meta.session_id),
                user_id: Some(&meta.user_id),
                details: json!({ "fields": patch.field_names() }),
            },
        )
        .await?;
        Ok(meta)
    })
    .await
}

/// The MTProto session blob of a session (`None` when none is stored): an
/// audited read, the audit row written before this returns.
pub async fn get_session_data(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    session_id: &str,
) -> Result<Option<SecretSlice<u8>>, DbError> {
    let Some(read) = read_session_data(conn, vault, session_id).await? else {
        return Ok(None);
    };
    activity::record(conn, ctx, read.event()).await?;
    Ok(Some(read.data))
}

/// A session blob read, not yet audited.
pub struct SessionDataRead {
    pub session_id: String,
    pub user_id: String,
    /// The session's version when the blob was read (its `ETag`).
    pub version: i64,
    pub data: SecretSlice<u8>,
}

impl SessionDataRead {
    /// The audit event to record before handing the blob out.
    pub fn event(&self) -> Event<'_> {
        Event {
            kind: ActivityType::SessionDataRead,
            session_id: Some(&self.session_id),
            user_id: Some(&self.user_id),
            details: json!({ "bytes": self.data.expose_secret().len() }),
        }
    }
}

/// The MTProto session blob of a session (`None` when none is stored), NOT
/// audited: the caller records `SessionDataRead::event` before handing it out.
/// A deactivated session is `DbError::Inactive`.
pub async fn read_session_data(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    session_id: &str,
) -> Result<Option<SessionDataRead>, DbError> {
    let (user_id, row) = user_sessions::table
        .filter(user_sessions::session_id.eq(session_id))
        .select((user_sessions::user_id, SealedRow::as_select()))
        .first::<(String, SealedRow)>(conn)
        .await?;
    if !row.is_active {
        return Err(DbError::Inactive);
    }
    let Some(stored) = row.session_data_encrypted.as_deref() else {
        return Ok(None);
    };
    let ring = ring_for(conn, vault, &row).await?;
    let data = open_field(&ring, row.id, SESSION_DATA, stored)?;
    Ok(Some(SessionDataRead {
        session_id: session_id.to_owned(),
        user_id,
        version: row.version,
        data: SecretSlice::from(data.to_vec()),
    }))
}

/// Replaces the MTProto session blob of an active session. The old blob is
/// never decrypted (a blob that fails its integrity check can be replaced);
/// the other sealed values are, to move the row to the primary key.
pub async fn put_session_data(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    session_id: &str,
    data: Zeroizing<Vec<u8>>,
    expected: Expected<'_>,
) -> Result<SessionMeta, DbError> {
    validate::session_data(&data)?;
    let bytes = data.len();
    let seal_ring = vault.reserve(conn, SEALED_COLUMNS).await?;
    let mut data = Some(data);
    conn.transaction::<_, DbError, _>(async |conn| {
        let row = lock_writable(conn, By::SessionId(session_id), expected).await?;
        let new = Replacement {
            session_data: Some(data.take()),
            ..Default::default()
        };
        let plain = merge(conn, vault, &row, new).await?;
        let sealed = seal_row(&seal_ring, row.id, &plain);
        let meta = write_sealed(conn, row.id, &sealed).await?;
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionDataWritten,
                session_id: Some(session_id),
                user_id: Some(&meta.user_id),
                details: json!({ "bytes": bytes, "data_key_id": meta.data_key_id }),
            },
        )
        .await?;
        Ok(meta)
    })
    .await
}

/// Clears the MTProto session blob of an active session (a bridge logged
/// out: its auth key is dead). Nothing is decrypted. Idempotent; audited
/// every time, with whether a blob was there.
pub async fn delete_session_data(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
    expected: Expected<'_>,
) -> Result<SessionMeta, DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let row = lock_writable(conn, By::SessionId(session_id), expected).await?;
        let meta = diesel::update(user_sessions::table.find(row.id))
            .set((
                user_sessions::session_data_encrypted.eq(None::<Vec<u8>>),
                user_sessions::version.eq(user_sessions::version + 1),
                user_sessions::updated_at.eq(diesel::dsl::now),
            ))
            .returning(SessionMeta::as_returning())
            .get_result(conn)
            .await?;
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionDataDeleted,
                session_id: Some(session_id),
                user_id: Some(&meta.user_id),
                details: json!({ "had_data": row.session_data_encrypted.is_some() }),
            },
        )
        .await?;
        Ok(meta)
    })
    .await
}

/// Makes a deactivated session active again: the one way back from
/// `deactivate`, audited. Idempotent: the flag says whether it changed.
pub async fn reactivate(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    session_id: &str,
) -> Result<(SessionMeta, bool), DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let changed = diesel::update(
            user_sessions::table
                .filter(user_sessions::session_id.eq(session_id))
                .filter(user_sessions::is_active.eq(false)),
        )
        .set((
            user_sessions::is_active.eq(true),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SessionMeta::as_returning())
        .get_result::<SessionMeta>(conn)
        .await
        .optional()?;
        let Some(meta) = changed else {
            return Ok((meta_in(conn, By::SessionId(session_id)).await?, false));
        };
        activity::record(
            conn,
            ctx,
            Event {
                kind: ActivityType::SessionReactivated,
                session_id: Some(session_id),
                user_id: Some(&meta.user_id),
                details: json!({}),
            },
        )
        .await?;
        Ok((meta, true))
    })
    .await
}

async fn write_sealed(
    conn: &mut AsyncPgConnection,
    row_id: Uuid,
    sealed: &Sealed,
) -> Result<SessionMeta, DbError> {
    Ok(diesel::update(user_sessions::table.find(row_id))
        .set((
            user_sessions::api_hash_encrypted.eq(&sealed.api_hash),
            user_sessions::phone_encrypted.eq(&sealed.phone),
            user_sessions::session_data_encrypted.eq(&sealed.session_data),
            user_sessions::data_key_id.eq(sealed.data_key_id),
            user_sessions::version.eq(user_sessions::version + 1),
            user_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .returning(SessionMeta::as_returning())
        .get_result(conn)
        .await?)
}

/// Re-encrypts up to `batch_size` rows that are not on the primary data key,
/// in one short transaction (a rotation step). Returns how many it moved.
///
/// The rows are locked `FOR UPDATE SKIP LOCKED`: a row a writer holds is left
/// to that writer (which re-seals the whole row under the primary itself) or
/// to a later batch, and two rotation processes never take the same row.
/// Every secret column of a row moves together, with `data_key_id`, so a row's
/// ciphertexts are always under the key its `data_key_id` names, at every
/// instant and whatever is killed when.
///
/// Rotation is not a user write: `version` and `updated_at` stay as they are.
/// The plaintext is unchanged, a client's optimistic-concurrency check must
/// not fail because of it, and `updated_at` keeps meaning "last changed by a
/// user". Nothing is audited per row; the rotation audits itself.
pub async fn reseal_batch(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    batch_size: u32,
) -> Result<usize, DbError> {
    use diesel::sql_types::{Array, Bytea, Nullable};
    let limit = i64::from(batch_size.max(1));
    // Up to three fields per row count against the new key's nonce budget.
    let seal_ring = vault.reserve(conn, 3 * limit as u64).await?;
    let primary = key_column_id(seal_ring.primary_id());
    conn.transaction::<_, DbError, _>(async |conn| {
        // `<` or `>` rather than `<>`: two ranges of the data_key_id index,
        // so a batch visits only rows still to move. (`<> ... ORDER BY id`
        // walked the primary key past every row already moved: each batch
        // got slower as the rotation went on.)
        let rows: Vec<SealedRow> = user_sessions::table
            .filter(
                user_sessions::data_key_id
                    .lt(primary)
                    .or(user_sessions::data_key_id.gt(primary)),
            )
            .limit(limit)
            .select(SealedRow::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut api_hashes = Vec::with_capacity(rows.len());
        let mut phones = Vec::with_capacity(rows.len());
        let mut blobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let open_ring = ring_for(conn, vault, row).await?;
            let sealed = seal_row(&seal_ring, row.id, &open_row(&open_ring, row)?);
            ids.push(row.id);
            api_hashes.push(sealed.api_hash);
            phones.push(sealed.phone);
            blobs.push(sealed.session_data);
        }
        // One statement for the batch: a round trip per row would dominate.
        diesel::sql_query(
            "UPDATE user_sessions AS s \
             SET api_hash_encrypted = v.api_hash, phone_encrypted = v.phone, \
                 session_data_encrypted = v.session_data, data_key_id = $5 \
             FROM unnest($1, $2, $3, $4) AS v(id, api_hash, phone, session_data) \
             WHERE s.id = v.id",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .bind::<Array<Bytea>, _>(&api_hashes)
        .bind::<Array<Nullable<Bytea>>, _>(&phones)
        .bind::<Array<Nullable<Bytea>>, _>(&blobs)
        .bind::<diesel::sql_types::Integer, _>(primary)
        .execute(conn)
        .await?;
        Ok(rows.len())
    })
    .await
}

/// How many rows are not yet on the primary key `primary`.
pub async fn rows_not_on(conn: &mut AsyncPgConnection, primary: DataKeyId) -> Result<i64, DbError> {
    Ok(user_sessions::table
        .filter(user_sessions::data_key_id.ne(key_column_id(primary)))
        .count()
        .get_result(conn)
        .await?)
}
