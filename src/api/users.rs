//! `/api/v1/users/{user_id}`: the tenant-keyed lookups. A tenant has one
//! session; these name it by `user_id` and never act on it, so no URL ever
//! means one row for one method and another row for another.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::db::sessions::SessionMeta;
use crate::domain::UserId;

use super::App;
use super::auth::{Auth, List, ReadOrBoot};
use super::error::{AppError, AppResult};
use super::extract::{PathId, QueryParams};
use super::session::{SessionWithCredentials, credentials, with_etag};

#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}",
    operation_id = "get_user",
    tag = "users",
    params(("user_id" = String, Path, description = "the user_id (tenant)")),
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "The tenant's session, metadata only: its session_id, flags, version. \
            No credential is read or decrypted, nothing is audited",
            body = SessionMeta, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 404, description = "No session for this user_id", body = super::ErrorBody),
        (status = 422, description = "Invalid user_id", body = super::ErrorBody),
    )
)]
pub async fn get(
    State(app): State<App>,
    _auth: Auth<List>,
    PathId(user_id): PathId<UserId>,
) -> AppResult<Response> {
    let meta = app.store.user(&user_id).await?;
    Ok(with_etag(StatusCode::OK, meta.version, meta))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/session",
    operation_id = "get_user_session",
    tag = "users",
    params(("user_id" = String, Path, description = "the user_id (tenant)"), ReadParams),
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "The tenant's session with its decrypted credentials (an audited read)",
            body = SessionWithCredentials, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 404, description = "No session for this user_id", body = super::ErrorBody),
        (status = 409, description = "The session is deactivated (`session_inactive`)", body = super::ErrorBody),
        (status = 422, description = "Invalid user_id", body = super::ErrorBody),
    )
)]
pub async fn session(
    State(app): State<App>,
    auth: Auth<ReadOrBoot>,
    PathId(user_id): PathId<UserId>,
    QueryParams(params): QueryParams<ReadParams>,
) -> AppResult<Response> {
    let found = if params.boot.unwrap_or(false) {
        app.store
            .boot_load(&auth.audit, &user_id)
            .await?
            .ok_or_else(inactive)?
    } else {
        // Audited: the read's audit row commits before the response is sent.
        app.store.credentials(&auth.audit, &user_id).await?
    };
    Ok(credentials(found))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// This read starts the tenant's agent (`vibee-sessions boot --api-url`):
    /// audited as `boot_load` in the same transaction that stamps
    /// `last_seen_at`, so an agent host needs no write scope (`sessions:boot`).
    boot: Option<bool>,
}

fn inactive() -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "session_inactive",
        "the session is deactivated; an agent is not started for it",
    )
}
