//! `/api/v1/sessions/{session_id}/lease` and `/api/v1/leases/...`: one live
//! client per Telegram session. The database clock decides expiry; the
//! fence grows strictly every time a lease changes hands.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::leases::{self, DEFAULT_TTL_SECONDS, Lease, Release, Take};
use crate::db::sessions::{Page, SessionMeta};
use crate::domain::SessionId;

use super::auth::{Admin, Auth, ReadOrBoot};
use super::error::{AppError, AppResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::{App, ErrorBody};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeLease {
    /// Who takes it (identifier rules: 1-128 of letters, digits, `_ - . : @`).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$"
    )]
    holder: String,
    /// 5-3600 (default 60).
    #[schema(minimum = 5, maximum = 3600)]
    ttl_seconds: Option<i32>,
}

pub(super) fn held(lease: &Lease) -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "lease_held",
        format!(
            "the lease is held by {} until {}",
            lease.holder,
            lease.expires_at.to_rfc3339()
        ),
    )
    .with_lease(&lease.holder, lease.expires_at)
}

pub(super) fn stale(live: Option<&Lease>) -> AppError {
    let e = AppError::new(
        StatusCode::CONFLICT,
        "stale_lease",
        "this holder and fence are not the live lease of the session",
    );
    match live {
        Some(l) => e.with_lease(&l.holder, l.expires_at),
        None => e,
    }
}

fn no_lease() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "no_lease",
        "nobody holds a live lease on this session",
    )
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{session_id}/lease",
    tag = "leases",
    operation_id = "take_lease",
    params(("session_id" = String, Path, description = "the session_id")),
    request_body = TakeLease,
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "Taken (the lease was free or expired: a new, larger fence) or renewed (same holder: same fence, later expiry)", body = Lease),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "`lease_held`: another holder has a live lease (named with its expiry); `session_inactive`", body = ErrorBody),
        (status = 422, description = "Invalid holder, ttl_seconds or session_id", body = ErrorBody),
    )
)]
pub async fn take(
    State(app): State<App>,
    auth: Auth<ReadOrBoot>,
    PathId(session_id): PathId<SessionId>,
    JsonBody(body): JsonBody<TakeLease>,
) -> AppResult<Json<Lease>> {
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    let taken = app
        .store
        .take_lease(&auth.audit, &session_id, &body.holder, ttl);
    match taken.await? {
        Take::Granted { lease, .. } => Ok(Json(lease)),
        Take::Held(lease) => Err(held(&lease)),
        Take::Inactive => Err(AppError::inactive()),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}/lease",
    tag = "leases",
    operation_id = "get_lease",
    params(("session_id" = String, Path, description = "the session_id")),
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "The live lease", body = Lease),
        (status = 404, description = "No such session, or `no_lease`: nobody holds it (or the lease expired)", body = ErrorBody),
        (status = 422, description = "Invalid session_id", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<App>,
    _auth: Auth<ReadOrBoot>,
    PathId(session_id): PathId<SessionId>,
) -> AppResult<Json<Lease>> {
    app.store
        .lease(&session_id)
        .await?
        .map(Json)
        .ok_or_else(no_lease)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleaseParams {
    /// The holder releasing it.
    holder: String,
    /// The fence it was given.
    fence: i64,
}

#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{session_id}/lease",
    tag = "leases",
    operation_id = "release_lease",
    params(("session_id" = String, Path, description = "the session_id"), ReleaseParams),
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 204, description = "Released"),
        (status = 400, description = "holder or fence missing or malformed", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "`stale_lease`: the holder or fence is not the current lease", body = ErrorBody),
        (status = 422, description = "Invalid holder or session_id", body = ErrorBody),
    )
)]
pub async fn release(
    State(app): State<App>,
    auth: Auth<ReadOrBoot>,
    PathId(session_id): PathId<SessionId>,
    QueryParams(params): QueryParams<ReleaseParams>,
) -> AppResult<StatusCode> {
    let released = app
        .store
        .release_lease(&auth.audit, &session_id, &params.holder, params.fence);
    match released.await? {
        Release::Released => Ok(StatusCode::NO_CONTENT),
        Release::Stale(live) => Err(stale(live.as_ref())),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{session_id}/lease/break",
    tag = "leases",
    operation_id = "break_lease",
    params(("session_id" = String, Path, description = "the session_id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Broken: the lease that was there (live or expired) is gone; the next take gets a new fence", body = Lease),
        (status = 404, description = "No such session, or `no_lease`", body = ErrorBody),
        (status = 422, description = "Invalid session_id", body = ErrorBody),
    )
)]
pub async fn break_lease(
    State(app): State<App>,
    auth: Auth<Admin>,
    PathId(session_id): PathId<SessionId>,
) -> AppResult<Json<Lease>> {
    app.store
        .break_lease(&auth.audit, &session_id)
        .await?
        .map(Json)
        .ok_or_else(no_lease)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$"
    )]
    holder: String,
    /// How long the announcement lives, 5-3600 (default 60).
    #[schema(minimum = 5, maximum = 3600)]
    ttl_seconds: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct Holders {
    /// Every live holder (the caller included), sorted.
    holders: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/leases/holders",
    tag = "leases",
    operation_id = "announce_lease_holder",
    request_body = Heartbeat,
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "Announced (a boot loader's heartbeat): the live holders, for a fair share", body = Holders),
        (status = 422, description = "Invalid holder or ttl_seconds", body = ErrorBody),
    )
)]
pub async fn heartbeat(
    State(app): State<App>,
    _auth: Auth<ReadOrBoot>,
    JsonBody(body): JsonBody<Heartbeat>,
) -> AppResult<Json<Holders>> {
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    let holders = app.store.announce_holder(&body.holder, ttl).await?;
    Ok(Json(Holders { holders }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/leases/holders/{holder}",
    tag = "leases",
    operation_id = "withdraw_lease_holder",
    params(("holder" = String, Path, description = "the holder that stops")),
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 204, description = "Withdrawn (idempotent)"),
        (status = 422, description = "Invalid holder", body = ErrorBody),
    )
)]
pub async fn leave(
    State(app): State<App>,
    _auth: Auth<ReadOrBoot>,
    Path(holder): Path<String>,
) -> AppResult<StatusCode> {
    leases::validate_holder(&holder)?;
    app.store.withdraw_holder(&holder).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A listed session with its live lease.
#[derive(Serialize, ToSchema)]
pub struct ListedSession {
    #[serde(flatten)]
    session: SessionMeta,
    /// The live lease, or null when nobody holds it.
    lease: Option<Lease>,
}

/// A page of `GET /api/v1/sessions`.
#[derive(Serialize, ToSchema)]
pub struct ListedPage {
    sessions: Vec<ListedSession>,
    next_cursor: Option<String>,
}

/// Attaches the live lease of every session of a page (one query).
pub(super) async fn with_leases(app: &App, page: Page) -> AppResult<ListedPage> {
    let ids: Vec<&str> = page
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    let mut live = app.store.live_leases(&ids).await?;
    let sessions = page
        .sessions
        .into_iter()
        .map(|session| ListedSession {
            lease: live.remove(&session.session_id),
            session,
        })
        .collect();
    Ok(ListedPage {
        sessions,
        next_cursor: page.next_cursor,
    })
}

/// `Lease-Fence: N` on a write that replaces what a lease holder uses.
/// Absent is `None`; anything but one integer is a 400.
pub struct LeaseFence(pub Option<i64>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LeaseFence {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, AppError> {
        let mut values = parts.headers.get_all("lease-fence").iter();
        let Some(first) = values.next() else {
            return Ok(Self(None));
        };
        let parsed = first
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|_| values.next().is_none());
        parsed.map(|f| Self(Some(f))).ok_or_else(|| {
            AppError::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                "Lease-Fence must be one integer: the fence of your lease",
            )
        })
    }
}
