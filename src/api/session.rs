//! `/api/v1/sessions/{session_id}`: one session, named by its own id for
//! every method (read with credentials, partial update, deactivate or purge,
//! reactivate). The tenant-keyed lookups are in `users.rs`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::db::DbError;
use crate::db::sessions::{Session, SessionMeta, SessionPatch};
use crate::domain::SessionId;
use crate::domain::validate::ChatRef;

use super::App;
use super::auth::{Auth, Read, Write};
use super::error::{AppError, AppResult};
use super::extract::{IfMatch, JsonBody, PathId, QueryParams, etag};

/// A secret shown in a response body: the only place one is serialized.
struct Revealed(SecretString);

impl Serialize for Revealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

/// A session's metadata and its decrypted credentials.
#[derive(Serialize, ToSchema)]
pub struct SessionWithCredentials {
    #[serde(flatten)]
    session: SessionMeta,
    #[schema(value_type = String)]
    api_hash: Revealed,
    #[schema(value_type = Option<String>)]
    phone: Option<Revealed>,
    /// base64 (standard alphabet, padded)
    #[schema(value_type = Option<String>, format = Byte)]
    session_data: Option<Revealed>,
}

/// A session answer: the body and `ETag: "<version>"`.
pub(super) fn with_etag(status: StatusCode, version: i64, body: impl Serialize) -> Response {
    (status, [(header::ETAG, etag(version))], Json(body)).into_response()
}

/// A session and its credentials as an answer (the read already audited by
/// the store).
pub(super) fn credentials(found: Session) -> Response {
    let creds = found.credentials;
    let version = found.meta.version;
    let body = SessionWithCredentials {
        session: found.meta,
        api_hash: Revealed(creds.api_hash),
        phone: creds.phone.map(Revealed),
        session_data: creds
            .session_data
            .map(|d| Revealed(SecretString::from(BASE64.encode(d.expose_secret())))),
    };
    with_etag(StatusCode::OK, version, body)
}

/// The 404 of a `/sessions/{session_id}` route. When the segment is no
/// session_id but some session's user_id, it says so: before the routes were
/// keyed by session_id, GET and PATCH took a user_id here.
pub(super) async fn session_not_found(app: &App, segment: &SessionId, e: DbError) -> AppError {
    if !matches!(e, DbError::NotFound) {
        return e.into();
    }
    if app
        .store
        .is_user_id(segment.as_str())
        .await
        .unwrap_or(false)
    {
        AppError::not_found(
            "no session has this session_id; it is a user_id: /api/v1/sessions/{session_id} \
             takes a session_id (look a tenant up with GET /api/v1/users/{user_id}, \
             or read its credentials with GET /api/v1/users/{user_id}/session)",
        )
    } else {
        AppError::not_found("no such session")
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}",
    operation_id = "get_session",
    tag = "sessions",
    params(("session_id" = String, Path, description = "the session_id")),
    security(("bearer" = ["sessions:read"])),
    responses(
        (status = 200, description = "The session with its decrypted credentials (an audited read)",
            body = SessionWithCredentials, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 404, description = "No such session", body = super::ErrorBody),
        (status = 409, description = "The session is deactivated (`session_inactive`)", body = super::ErrorBody),
        (status = 422, description = "Invalid session_id", body = super::ErrorBody),
    )
)]
pub async fn get(
    State(app): State<App>,
    auth: Auth<Read>,
    PathId(session_id): PathId<SessionId>,
) -> AppResult<Response> {
    // Audited: the read is queued before the response is sent.
    match app
        .store
        .session_credentials(&auth.audit, &session_id)
        .await
    {
        Ok(found) => Ok(credentials(found)),
        Err(e) => Err(session_not_found(&app, &session_id, e).await),
    }
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Non-secret fields to change; absent fields stay, `null` clears a nullable one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSession {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    username: Option<Option<String>>,
    is_authorized: Option<bool>,
    digital_twin_enabled: Option<bool>,
    auto_reply_enabled: Option<bool>,
    #[schema(value_type = Option<Vec<ChatRef>>)]
    target_chats: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    last_seen_at: Option<Option<DateTime<Utc>>>,
}

impl PatchSession {
    pub(super) fn into_patch(self) -> SessionPatch {
        SessionPatch {
            username: self.username,
            is_authorized: self.is_authorized,
            digital_twin_enabled: self.digital_twin_enabled,
            auto_reply_enabled: self.auto_reply_enabled,
            target_chats: self.target_chats,
            last_seen_at: self.last_seen_at,
        }
    }
}

#[utoipa::path(
    patch,
    path = "/api/v1/sessions/{session_id}",
    operation_id = "update_session",
    tag = "sessions",
    params(
        ("session_id" = String, Path, description = "the session_id"),
        ("If-Match" = Option<String>, Header, description = "write only if the session is at this ETag (412 otherwise)"),
    ),
    request_body = PatchSession,
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 200, description = "Updated", body = SessionMeta,
            headers(("ETag" = String, description = "\"<version>\""))),
        (status = 404, description = "No such session", body = super::ErrorBody),
        (status = 409, description = "The session is deactivated (`session_inactive`)", body = super::ErrorBody),
        (status = 412, description = "If-Match names another version (`precondition_failed`)", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody),
        (status = 415, description = "Not application/json", body = super::ErrorBody),
        (status = 422, description = "Invalid field (named in `field`)", body = super::ErrorBody),
    )
)]
pub async fn patch(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(session_id): PathId<SessionId>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<PatchSession>,
) -> AppResult<Response> {
    let patch = body.into_patch();
    let updated = app
        .store
        .update_metadata(&auth.audit, &session_id, &patch, if_match.versions())
        .await;
    match updated {
        Ok(meta) => Ok(with_etag(StatusCode::OK, meta.version, meta)),
        Err(e) => Err(session_not_found(&app, &session_id, e).await),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Delete the row instead of deactivating it (the audit trail stays).
    purge: Option<bool>,
}

#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{session_id}",
    operation_id = "delete_session",
    tag = "sessions",
    params(
        ("session_id" = String, Path, description = "the session_id"),
        DeleteParams,
        ("If-Match" = Option<String>, Header, description = "deactivate or purge only if the session is at this ETag (412 otherwise)"),
    ),
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 204, description = "Deactivated (idempotent) or purged"),
        (status = 400, description = "If-Match is not `*` or a list of entity tags (`malformed_request`)", body = super::ErrorBody),
        (status = 404, description = "No such session", body = super::ErrorBody),
        (status = 409, description = "`lease_held`: a purge while a lease is live (the holder and its expiry are named); deactivate first, and the holder's loader lets go. Nothing is deleted", body = super::ErrorBody),
        (status = 412, description = "If-Match names another version (`precondition_failed`); nothing is written", body = super::ErrorBody),
        (status = 422, description = "Invalid session_id", body = super::ErrorBody),
    )
)]
pub async fn delete(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(session_id): PathId<SessionId>,
    if_match: IfMatch,
    QueryParams(params): QueryParams<DeleteParams>,
) -> AppResult<StatusCode> {
    let expected = if_match.versions();
    let done = if params.purge.unwrap_or(false) {
        app.store.purge(&auth.audit, &session_id, expected).await
    } else {
        app.store
            .deactivate(&auth.audit, &session_id, expected)
            .await
            .map(|_| ())
    };
    match done {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(session_not_found(&app, &session_id, e).await),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{session_id}/reactivate",
    operation_id = "reactivate_session",
    tag = "sessions",
    params(("session_id" = String, Path, description = "the session_id")),
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 200, description = "Active (again, or still: idempotent); audited when it changed",
            body = SessionMeta, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 404, description = "No such session", body = super::ErrorBody),
        (status = 422, description = "Invalid session_id", body = super::ErrorBody),
    )
)]
pub async fn reactivate(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(session_id): PathId<SessionId>,
) -> AppResult<Response> {
    match app.store.reactivate(&auth.audit, &session_id).await {
        Ok(meta) => Ok(with_etag(StatusCode::OK, meta.version, meta)),
        Err(e) => Err(session_not_found(&app, &session_id, e).await),
    }
}
