//! Bearer tokens. The scope a handler needs is in its signature:
//! `auth: Auth<Read>`. 401 and 403 bodies say nothing about which tokens exist.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::db::activity::AuditContext;
use crate::db::tokens::{self, Scope, TokenIdentity};

use super::error::AppError;
use super::{App, request_id};

/// The scopes a route accepts (any one of them, or `admin`), as a type. The
/// first is the one a 403 names as `required_scope`.
pub trait RequiredScope {
    const SCOPES: &'static [Scope];
}

pub struct Read;
/// A credentials read: `sessions:read`, or an agent host's `sessions:boot`.
pub struct ReadOrBoot;
pub struct Write;
pub struct List;
/// The list of sessions: `sessions:list`, or `sessions:boot` (active only).
pub struct ListOrBoot;
pub struct Admin;
/// Any valid token (the console asks what its token may do).
pub struct AnyScope;

impl RequiredScope for Read {
    const SCOPES: &'static [Scope] = &[Scope::SessionsRead];
}
impl RequiredScope for ReadOrBoot {
    const SCOPES: &'static [Scope] = &[Scope::SessionsRead, Scope::SessionsBoot];
}
impl RequiredScope for Write {
    const SCOPES: &'static [Scope] = &[Scope::SessionsWrite];
}
impl RequiredScope for List {
    const SCOPES: &'static [Scope] = &[Scope::SessionsList];
}
impl RequiredScope for ListOrBoot {
    const SCOPES: &'static [Scope] = &[Scope::SessionsList, Scope::SessionsBoot];
}
impl RequiredScope for Admin {
    const SCOPES: &'static [Scope] = &[Scope::Admin];
}
impl RequiredScope for AnyScope {
    const SCOPES: &'static [Scope] = &[];
}

/// An authenticated caller holding scope `S`, and the audit context of the request.
pub struct Auth<S> {
    pub audit: AuditContext,
    /// This request's place under the token's concurrency limit.
    _slot: tokio::sync::OwnedSemaphorePermit,
    /// The token itself, for a handler that narrows what a scope may see.
    pub token: TokenIdentity,
    _scope: PhantomData<S>,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl<S: RequiredScope> FromRequestParts<App> for Auth<S> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, AppError> {
        let presented = bearer(parts).ok_or_else(AppError::unauthorized)?;
        let token = authenticate(app, presented)
            .await?
            .ok_or_else(AppError::unauthorized)?;
        if let Some(first) = S::SCOPES.first()
            && !S::SCOPES.iter().any(|s| token.allows(*s))
        {
            return Err(AppError::forbidden_any(S::SCOPES, first.as_str()));
        }
        let slot = app.token_limits.enter(token.id).await.ok_or_else(|| {
            AppError::too_many_requests(
                "this token has too many requests in flight; retry after the others finish",
            )
        })?;
        if app.token_uses.due(token.id) {
            let mut conn = app.conn().await?;
            tokens::touch(&mut conn, token.id).await?;
        }
        let audit = AuditContext {
            actor: token.name.clone(),
            request_id: request_id(&parts.headers),
        };
        Ok(Self {
            audit,
            _slot: slot,
            token,
            _scope: PhantomData,
        })
    }
}

/// The token a presented secret belongs to: from the cache of verified tokens
/// when it is fresh (no database round trip), else from the database.
pub(super) async fn authenticate(
    app: &App,
    presented: &str,
) -> Result<Option<TokenIdentity>, AppError> {
    let Some(digest) = tokens::digest(presented) else {
        return Ok(None);
    };
    if let Some(identity) = app.token_cache.get(&digest) {
        metrics::counter!("vibee_token_cache_hits_total").increment(1);
        return Ok(Some(identity));
    }
    if app.token_cache.known_unknown(&digest) {
        metrics::counter!("vibee_token_unknown_cache_hits_total").increment(1);
        return Ok(None);
    }
    metrics::counter!("vibee_token_cache_misses_total").increment(1);
    // Slowed while bogus tokens pour in (cached tokens never get here).
    app.failed_lookups.pace().await;
    let generation = app.token_cache.generation();
    // At most a quarter of the pool checks tokens at once: a flood of bogus
    // tokens waits here instead of holding every connection.
    let _gate = app
        .token_lookups
        .acquire()
        .await
        .map_err(|_| AppError::internal())?;
    let mut conn = app.conn().await?;
    let found = tokens::authenticate(&mut conn, &digest).await?;
    match &found {
        Some(identity) => app.token_cache.insert(digest, identity.clone(), generation),
        None => {
            app.failed_lookups.failed();
            app.token_cache.insert_unknown(digest, generation)
        }
    }
    Ok(found)
}

/// When each token's `last_used_at` was last written by this process.
#[derive(Default)]
pub struct TokenUses(Mutex<HashMap<i64, Instant>>);

const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl TokenUses {
    fn due(&self, id: i64) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match seen.get(&id) {
            Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
            _ => {
                seen.insert(id, now);
                true
            }
        }
    }
}
