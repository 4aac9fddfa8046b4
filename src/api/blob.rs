//! `/api/v1/sessions/{session_id}/data`: the MTProto session blob as raw
//! bytes, so a bridge keeps its auth key here instead of in a plaintext file.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretSlice};

use crate::domain::SessionId;

use super::auth::{Auth, Read, Write};
use super::error::{AppError, AppResult};
use super::extract::{OctetStream, PathId};
use super::{App, ErrorBody};

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/data",
    tag = "session data",
    params(("id" = String, Path, description = "the session_id")),
    security(("bearer" = ["sessions:read"])),
    responses(
        (status = 200, description = "The blob (an audited read)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:read", body = ErrorBody),
        (status = 404, description = "No such session, or no blob stored (`code`: `no_session_data`)", body = ErrorBody),
        (status = 422, description = "Invalid session_id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<App>,
    auth: Auth<Read>,
    PathId(session_id): PathId<SessionId>,
) -> AppResult<Response> {
    let data = app.store.session_data(&auth.audit, &session_id).await?;
    let data = data.ok_or_else(|| {
        AppError::new(
            StatusCode::NOT_FOUND,
            "no_session_data",
            "this session has no session data stored",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        data.expose_secret().to_vec(),
    )
        .into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/sessions/{id}/data",
    tag = "session data",
    params(("id" = String, Path, description = "the session_id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 204, description = "Stored"),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:write", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/octet-stream", body = ErrorBody),
        (status = 422, description = "Empty or over 64 KiB", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn put(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(session_id): PathId<SessionId>,
    OctetStream(body): OctetStream,
) -> AppResult<StatusCode> {
    let data = SecretSlice::from(body.to_vec());
    app.store
        .put_session_data(&auth.audit, &session_id, &data)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
