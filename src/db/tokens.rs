//! API tokens: only a SHA-256 of each secret is stored. Tokens carry 256 random
//! bits, so a fast hash is enough (no dictionary to slow down), and a lookup by
//! hash reveals nothing about the secret through timing.

use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

mod cache;
mod hash;
pub use cache::{TOKEN_CACHE_TTL, TOKENS_CHANNEL, TokenCache, spawn_token_watcher};
pub use hash::TokenHash;

use super::activity::{self, ActivityType, AuditContext};
use super::error::DbError;
use super::schema::api_tokens;
use super::text_enum::text_enum;
use crate::domain::validate::{self, Invalid};

const TOKEN_PREFIX: &str = "vbs_";

text_enum! {
    /// What a token may do, as each element of `api_tokens.scopes` holds it.
    /// `admin` may do everything.
    pub enum Scope in "api_tokens.scopes" as "scope" {
        SessionsRead = "sessions:read",
        SessionsWrite = "sessions:write",
        SessionsList = "sessions:list",
        /// An agent host's least privilege: read the credentials of active
        /// sessions (each read a `boot_load` that stamps `last_seen_at`) and
        /// list them; no write, no audit trail, no stats.
        SessionsBoot = "sessions:boot",
        Admin = "admin",
    }
}

/// A token that checked out: its name (for the audit log) and scopes.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl TokenIdentity {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

#[derive(Debug, Serialize, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct TokenInfo {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The digest a presented token is looked up (and cached) by; `None` for
/// what cannot be a token of ours.
pub fn digest(presented: &str) -> Option<TokenHash> {
    well_formed(presented).then(|| TokenHash::of(presented))
}

/// Every token `create` makes is the prefix and 32 random bytes in
/// unpadded base64url (43 characters): anything else is refused without a
/// hash, a cache entry or a query.
fn well_formed(presented: &str) -> bool {
    presented.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Creates a token and returns its secret, which is shown once and never
/// stored; audited (`token_created`: actor, name, scopes; never the
/// secret or its hash) in the same transaction.
pub async fn create(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    name: &str,
    scopes: &[Scope],
) -> Result<SecretString, DbError> {
    validate::identifier("name", name)?;
    if scopes.is_empty() {
        return Err(Invalid::new("scope", "at least one scope is required").into());
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the operating system's random number generator failed");
    let token = SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ));
    conn.transaction::<_, DbError, _>(async |conn| {
        let inserted = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::name.eq(name),
                api_tokens::token_hash.eq(TokenHash::of(token.expose_secret())),
                api_tokens::scopes.eq(scopes),
            ))
            // Names are unique among live tokens (a partial index): a revoked
            // token's name can be given again.
            .on_conflict(api_tokens::name)
            .filter_target(api_tokens::revoked_at.is_null())
            .do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            return Err(Invalid::new("name", "is already taken by another token").into());
        }
        activity::record_unscoped_event(
            conn,
            ctx,
            ActivityType::TokenCreated,
            json!({ "token": name, "scopes": scopes }),
        )
        .await
    })
    .await?;
    Ok(token)
}

/// The token a presented secret belongs to (by its `digest`), if it exists
/// and is not revoked.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    presented: &TokenHash,
) -> Result<Option<TokenIdentity>, DbError> {
    let row = api_tokens::table
        .filter(api_tokens::token_hash.eq(presented))
        .filter(api_tokens::revoked_at.is_null())
        .select((
            api_tokens::id,
            api_tokens::name,
            api_tokens::scopes,
            api_tokens::token_hash,
        ))
        .first::<(i64, String, Vec<Scope>, TokenHash)>(conn)
        .await
        .optional()?;
    Ok(row.and_then(|(id, name, scopes, stored)| {
        // The index found it by hash; compare in constant time all the same.
        stored
            .ct_eq(presented)
            .then_some(TokenIdentity { id, name, scopes })
    }))
}

/// Records use, at most once a minute per token (a write per request would
/// turn every read into a write).
pub async fn touch(conn: &mut AsyncPgConnection, id: i64) -> Result<(), DbError> {
    diesel::update(api_tokens::table.find(id))
        .set(api_tokens::last_used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn list(conn: &mut AsyncPgConnection) -> Result<Vec<TokenInfo>, DbError> {
    Ok(api_tokens::table
        .select(TokenInfo::as_select())
        .order(api_tokens::name)
        .load(conn)
        .await?)
}

/// Revokes a token; it stops working at once. `Ok(false)` when it already was.
/// Revokes a token; a revocation that changes something is audited
/// (`token_revoked`: actor, name) in the same transaction.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    name: &str,
) -> Result<bool, DbError> {
    conn.transaction::<_, DbError, _>(async |conn| {
        let changed = diesel::update(
            api_tokens::table
                .filter(api_tokens::name.eq(name))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
        if changed == 0 {
            api_tokens::table
                .filter(api_tokens::name.eq(name))
                .select(api_tokens::id)
                .first::<i64>(conn)
                .await?;
            return Ok(false);
        }
        activity::record_unscoped_event(
            conn,
            ctx,
            ActivityType::TokenRevoked,
            json!({ "token": name }),
        )
        .await?;
        Ok(true)
    })
    .await
}
