//! API tokens: only a SHA-256 of each secret is stored. Tokens carry 256 random
//! bits, so a fast hash is enough (no dictionary to slow down), and a lookup by
//! hash reveals nothing about the secret through timing.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

mod cache;
pub use cache::{TOKEN_CACHE_TTL, TOKENS_CHANNEL, TokenCache, spawn_token_watcher};

use super::error::DbError;
use super::schema::api_tokens;
use super::validate::{self, Invalid};

const TOKEN_PREFIX: &str = "vbs_";

/// What a token may do. `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Scope {
    #[serde(rename = "sessions:read")]
    SessionsRead,
    #[serde(rename = "sessions:write")]
    SessionsWrite,
    #[serde(rename = "sessions:list")]
    SessionsList,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::SessionsList,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::SessionsList => "sessions:list",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope {s:?}; scopes are sessions:read, sessions:write, sessions:list, admin")
            })
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
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The digest a presented token is looked up (and cached) by; `None` for
/// what cannot be a token of ours.
pub fn digest(presented: &str) -> Option<[u8; 32]> {
    (presented.starts_with(TOKEN_PREFIX) && presented.len() <= 128)
        .then(|| Sha256::digest(presented.as_bytes()).into())
}

/// Creates a token and returns its secret, which is shown once and never stored.
pub async fn create(
    conn: &mut AsyncPgConnection,
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
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let inserted = diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(hash(token.expose_secret())),
            api_tokens::scopes.eq(scope_names),
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
    Ok(token)
}

/// The token a presented secret belongs to, if it exists and is not revoked.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    presented: &str,
) -> Result<Option<TokenIdentity>, DbError> {
    if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let presented_hash = hash(presented);
    let row = api_tokens::table
        .filter(api_tokens::token_hash.eq(&presented_hash))
        .filter(api_tokens::revoked_at.is_null())
        .select((
            api_tokens::id,
            api_tokens::name,
            api_tokens::scopes,
            api_tokens::token_hash,
        ))
        .first::<(i64, String, Vec<String>, Vec<u8>)>(conn)
        .await
        .optional()?;
    Ok(row.and_then(|(id, name, scopes, stored)| {
        // The index found it by hash; compare in constant time all the same.
        bool::from(stored.ct_eq(&presented_hash)).then(|| TokenIdentity {
            id,
            name,
            scopes: scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        })
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
pub async fn revoke(conn: &mut AsyncPgConnection, name: &str) -> Result<bool, DbError> {
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
    }
    Ok(changed > 0)
}
