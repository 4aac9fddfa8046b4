//! `/api/v1/sessions/{session_id}/data`: the MTProto session blob as raw
//! bytes, so a bridge keeps its auth key here instead of in a plaintext file.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::db::sessions;
use crate::domain::SessionId;

use super::auth::{Auth, Read, Write};
use super::error::{AppError, AppResult};
use super::extract::{IfMatch, OctetStream, PathId, etag};
use super::leases::LeaseFence;
use super::session::{session_not_found, with_etag};
use super::{App, ErrorBody};

/// Raw bytes (`application/octet-stream`), 1 B to 1 MiB.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Blob(#[allow(dead_code)] Vec<u8>);

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}/data",
    operation_id = "get_session_data",
    tag = "session data",
    params(("session_id" = String, Path, description = "the session_id")),
    security(("bearer" = ["sessions:read"])),
    responses(
        (status = 200, description = "The blob (an audited read)", content_type = "application/octet-stream",
            body = Blob, headers(("ETag" = String, description = "\"<version>\" of the session"))),
        (status = 404, description = "No such session, or no blob stored (`code`: `no_session_data`)", body = ErrorBody),
        (status = 409, description = "The session is deactivated (`session_inactive`)", body = ErrorBody),
        (status = 422, description = "Invalid session_id", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<App>,
    auth: Auth<Read>,
    PathId(session_id): PathId<SessionId>,
) -> AppResult<Response> {
    // Audited: the read is queued before the response is sent.
    let read = match app.store.session_data(&auth.audit, &session_id).await {
        Ok(r) => r,
        Err(e) => return Err(session_not_found(&app, &session_id, e).await),
    };
    let (data, version) = read.ok_or_else(|| {
        AppError::new(
            StatusCode::NOT_FOUND,
            "no_session_data",
            "this session has no session data stored",
        )
    })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::ETAG, etag(version)),
        ],
        data.expose_secret().to_vec(),
    )
        .into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/sessions/{session_id}/data",
    operation_id = "put_session_data",
    tag = "session data",
    params(
        ("session_id" = String, Path, description = "the session_id"),
        ("If-Match" = Option<String>, Header, description = "write only if the session is at this ETag (412 otherwise)"),
        ("Lease-Fence" = Option<i64>, Header, description = "the fence of the caller's lease; required while a lease is live"),
    ),
    request_body(content = Blob, content_type = "application/octet-stream"),
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 200, description = "Stored; the session's metadata", body = sessions::SessionMeta,
            headers(("ETag" = String, description = "\"<version>\" after the write"))),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 400, description = "Lease-Fence is not an integer (`invalid_header`)", body = ErrorBody),
        (status = 409, description = "The session is deactivated (`session_inactive`); a live lease and no Lease-Fence (`lease_required`); a Lease-Fence that is not the live one (`stale_lease`)", body = ErrorBody),
        (status = 412, description = "If-Match names another version (`precondition_failed`)", body = ErrorBody),
        (status = 413, description = "Over 1 MiB (`payload_too_large`)", body = ErrorBody),
        (status = 415, description = "Not application/octet-stream", body = ErrorBody),
        (status = 422, description = "Empty", body = ErrorBody),
    )
)]
pub async fn put(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(session_id): PathId<SessionId>,
    if_match: IfMatch,
    LeaseFence(fence): LeaseFence,
    OctetStream(body): OctetStream,
) -> AppResult<Response> {
    // The request's one buffer, taken over (no copy) and zeroized after sealing.
    let data = Zeroizing::new(Vec::from(body));
    let written = app
        .store
        .put_session_data(&auth.audit, &session_id, data, if_match.versions(), fence)
        .await;
    match written {
        Ok(meta) => Ok(with_etag(StatusCode::OK, meta.version, meta)),
        Err(e) => Err(session_not_found(&app, &session_id, e).await),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{session_id}/data",
    operation_id = "delete_session_data",
    tag = "session data",
    params(
        ("session_id" = String, Path, description = "the session_id"),
        ("If-Match" = Option<String>, Header, description = "clear only if the session is at this ETag (412 otherwise)"),
        ("Lease-Fence" = Option<i64>, Header, description = "the fence of the caller's lease; required while a lease is live"),
    ),
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 200, description = "Cleared (idempotent; audited); the session's metadata", body = sessions::SessionMeta,
            headers(("ETag" = String, description = "\"<version>\" after the write"))),
        (status = 400, description = "Lease-Fence is not an integer (`invalid_header`)", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "The session is deactivated (`session_inactive`); a live lease and no Lease-Fence (`lease_required`); a Lease-Fence that is not the live one (`stale_lease`). Nothing is cleared", body = ErrorBody),
        (status = 412, description = "If-Match names another version (`precondition_failed`)", body = ErrorBody),
        (status = 422, description = "Invalid session_id", body = ErrorBody),
    )
)]
pub async fn delete(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(session_id): PathId<SessionId>,
    if_match: IfMatch,
    LeaseFence(fence): LeaseFence,
) -> AppResult<Response> {
    let cleared = app
        .store
        .delete_session_data(&auth.audit, &session_id, if_match.versions(), fence)
        .await;
    match cleared {
        Ok(meta) => Ok(with_etag(StatusCode::OK, meta.version, meta)),
        Err(e) => Err(session_not_found(&app, &session_id, e).await),
    }
}
