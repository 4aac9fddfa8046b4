//! `/api/v1/users/{user_id}`: the tenant-keyed lookups. A tenant has one
//! session; these name it by `user_id` and never act on it, so no URL ever
//! means one row for one method and another row for another.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::db::sessions::SessionMeta;
use crate::domain::UserId;

use super::App;
use super::auth::{Auth, List, Read};
use super::error::AppResult;
use super::extract::PathId;
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
    params(("user_id" = String, Path, description = "the user_id (tenant)")),
    security(("bearer" = ["sessions:read"])),
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
    auth: Auth<Read>,
    PathId(user_id): PathId<UserId>,
) -> AppResult<Response> {
    // Audited: the read is queued before the response is sent.
    let found = app.store.credentials(&auth.audit, &user_id).await?;
    Ok(credentials(found))
}
