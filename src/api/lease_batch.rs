//! `/api/v1/leases/{take,release,renew}`: many leases of one holder in one
//! request and one statement (a boot loader's share; issue 17). Same scopes
//! as the single lease routes; bodies up to `BATCH_BODY_LIMIT`.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::leases::{DEFAULT_TTL_SECONDS, Lease};

use super::auth::{Auth, ReadOrBoot};
use super::error::AppResult;
use super::extract::JsonBody;
use super::{App, ErrorBody};

/// The body limit of the batch routes: 10,000 session ids of up to 128
/// characters, with their fences, fit.
pub const BATCH_BODY_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeLeases {
    /// Who takes them (identifier rules: 1-128 of letters, digits, `_ - . : @`).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$"
    )]
    holder: String,
    /// 5-3600 (default 60).
    #[schema(minimum = 5, maximum = 3600)]
    ttl_seconds: Option<i32>,
    /// The sessions to take (at most 10,000; a name given twice counts once).
    #[schema(max_items = 10000)]
    session_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TakenLeases {
    /// Taken (free or expired: a new, larger fence) or renewed (already this
    /// holder's: same fence, later expiry), in session_id order.
    granted: Vec<Lease>,
    /// Named but not granted: another holder has a live lease, the session
    /// is deactivated, or there is no such session. In the order named.
    not_granted: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/leases/take",
    tag = "leases",
    operation_id = "take_leases",
    request_body = TakeLeases,
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "Every named session that is active and free, expired or already this holder's taken or renewed, in one statement; each change of hands audited", body = TakenLeases),
        (status = 413, description = "Body over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid holder, ttl_seconds, a session_id, or over 10,000 session_ids", body = ErrorBody),
    )
)]
pub async fn take(
    State(app): State<App>,
    auth: Auth<ReadOrBoot>,
    JsonBody(body): JsonBody<TakeLeases>,
) -> AppResult<Json<TakenLeases>> {
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    let granted = app
        .store
        .take_leases(&auth.audit, &body.holder, ttl, &body.session_ids)
        .await?;
    let mut seen: HashSet<&str> = granted.iter().map(|l| l.session_id.as_str()).collect();
    let not_granted = body
        .session_ids
        .iter()
        .filter(|s| seen.insert(s.as_str()))
        .cloned()
        .collect();
    Ok(Json(TakenLeases {
        granted,
        not_granted,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseLeases {
    /// The holder releasing them.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$"
    )]
    holder: String,
    /// The leases to release: session_id to the fence it was given (at most 10,000).
    fences: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ReleasedLeases {
    /// Released (each audited as `lease_released`), in session_id order.
    released: Vec<String>,
    /// Named but not released: this holder and fence are not the session's
    /// lease (released, broken, taken over, never held, or no such session).
    stale: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/leases/release",
    tag = "leases",
    operation_id = "release_leases",
    request_body = ReleaseLeases,
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "Every named lease this holder still holds at that fence released, in one statement", body = ReleasedLeases),
        (status = 413, description = "Body over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid holder, a session_id, or over 10,000 fences", body = ErrorBody),
    )
)]
pub async fn release(
    State(app): State<App>,
    auth: Auth<ReadOrBoot>,
    JsonBody(body): JsonBody<ReleaseLeases>,
) -> AppResult<Json<ReleasedLeases>> {
    let fences: Vec<(String, i64)> = body.fences.into_iter().collect();
    let released = app
        .store
        .release_leases(&auth.audit, &body.holder, &fences)
        .await?;
    let gone: HashSet<&str> = released.iter().map(String::as_str).collect();
    let stale = fences
        .iter()
        .filter(|(s, _)| !gone.contains(s.as_str()))
        .map(|(s, _)| s.clone())
        .collect();
    Ok(Json(ReleasedLeases { released, stale }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewLeases {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$"
    )]
    holder: String,
    /// 5-3600 (default 60).
    #[schema(minimum = 5, maximum = 3600)]
    ttl_seconds: Option<i32>,
    /// The leases to renew: session_id to the fence it was given (at most 10,000).
    fences: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Renewed {
    /// Renewed with their new expiry.
    renewed: Vec<Lease>,
    /// Named but not renewed: expired, broken, released, or the fence moved
    /// on. Stop using these sessions.
    lost: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/leases/renew",
    tag = "leases",
    operation_id = "renew_leases",
    request_body = RenewLeases,
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "Every lease still live under this holder and fence renewed, in one statement", body = Renewed),
        (status = 413, description = "Body over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid holder, ttl_seconds, a session_id, or over 10,000 fences", body = ErrorBody),
    )
)]
pub async fn renew(
    State(app): State<App>,
    _auth: Auth<ReadOrBoot>,
    JsonBody(body): JsonBody<RenewLeases>,
) -> AppResult<Json<Renewed>> {
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    let fences: Vec<(String, i64)> = body.fences.into_iter().collect();
    let renewed = app.store.renew_leases(&body.holder, ttl, &fences).await?;
    let kept: HashSet<&str> = renewed.iter().map(|l| l.session_id.as_str()).collect();
    let lost = fences
        .iter()
        .filter(|(s, _)| !kept.contains(s.as_str()))
        .map(|(s, _)| s.clone())
        .collect();
    Ok(Json(Renewed { renewed, lost }))
}
