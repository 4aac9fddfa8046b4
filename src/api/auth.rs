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

/// The scope a route requires, as a type.
pub trait RequiredScope {
    const SCOPE: Option<Scope>;
}

pub struct Read;
pub struct Write;
pub struct List;
pub struct Admin;
/// Any valid token (the console asks what its token may do).
pub struct AnyScope;

impl RequiredScope for Read {
    const SCOPE: Option<Scope> = Some(Scope::SessionsRead);
}
impl RequiredScope for Write {
    const SCOPE: Option<Scope> = Some(Scope::SessionsWrite);
}
impl RequiredScope for List {
    const SCOPE: Option<Scope> = Some(Scope::SessionsList);
}
impl RequiredScope for Admin {
    const SCOPE: Option<Scope> = Some(Scope::Admin);
}
impl RequiredScope for AnyScope {
    const SCOPE: Option<Scope> = None;
}

/// An authenticated caller holding scope `S`, and the audit context of the request.
pub struct Auth<S> {
    pub audit: AuditContext,
    /// Every scope the token holds.
    pub scopes: Vec<Scope>,
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
        if let Some(scope) = S::SCOPE.filter(|s| !token.allows(*s)) {
            return Err(AppError::forbidden(scope.as_str()));
        }
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
            scopes: token.scopes,
            _scope: PhantomData,
        })
    }
}

/// The token a presented secret belongs to: from the cache of verified tokens
/// when it is fresh (no database round trip), else from the database.
async fn authenticate(app: &App, presented: &str) -> Result<Option<TokenIdentity>, AppError> {
    let Some(digest) = tokens::digest(presented) else {
        return Ok(None);
    };
    if let Some(identity) = app.token_cache.get(&digest) {
        metrics::counter!("vibee_token_cache_hits_total").increment(1);
        return Ok(Some(identity));
    }
    metrics::counter!("vibee_token_cache_misses_total").increment(1);
    let generation = app.token_cache.generation();
    let mut conn = app.conn().await?;
    let found = tokens::authenticate(&mut conn, presented).await?;
    if let Some(identity) = &found {
        app.token_cache.insert(digest, identity.clone(), generation);
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
