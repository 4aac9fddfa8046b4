//! `/api/v1/sessions`: create or update, read with credentials, list,
//! partial update, deactivate or purge, and the audit trail.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::db::activity::Activity;
use crate::db::sessions::{
    self, ListQuery, Page, SessionInput, SessionMeta, SessionPatch, Upserted,
};

use crate::domain::{SessionId, UserId, decode_session_data};

use super::auth::{Auth, List, ListOrBoot, ReadOrBoot, Write};
use super::error::{AppError, AppResult};
use super::extract::{JsonBody, PathId, QueryParams};
use super::{App, ErrorBody};
use crate::db::tokens::Scope;

/// A session to create or update, keyed by `user_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The tenant: 1-128 characters of letters, digits and `_ - . : @`.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$"
    )]
    user_id: String,
    /// Telegram api_id (positive).
    #[schema(minimum = 1)]
    api_id: i32,
    /// Telegram api_hash: 32 hexadecimal characters.
    #[schema(value_type = String, pattern = r"^[0-9a-fA-F]{32}$")]
    api_hash: SecretString,
    /// Generated (128 random bits, hex) when absent on create; kept when absent on update.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$"
    )]
    session_id: Option<String>,
    /// E.164 phone number, e.g. `+15551234567`.
    #[schema(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{6,14}$")]
    phone: Option<SecretString>,
    username: Option<String>,
    /// The MTProto session blob, base64 (at most 64 KiB decoded).
    #[schema(value_type = Option<String>, format = Byte)]
    session_data: Option<SecretString>,
    is_authorized: Option<bool>,
    digital_twin_enabled: Option<bool>,
    auto_reply_enabled: Option<bool>,
    /// Chat ids (integers) or names (strings).
    #[schema(value_type = Option<Vec<Object>>)]
    target_chats: Option<Value>,
}

fn decode_blob(encoded: &SecretString) -> AppResult<SecretSlice<u8>> {
    decode_session_data(encoded.expose_secret())
        .map_err(|_| AppError::invalid_field("session_data", "session_data must be valid base64"))
}

impl CreateSession {
    pub(super) fn into_input(self) -> AppResult<SessionInput> {
        let session_data = self.session_data.as_ref().map(decode_blob).transpose()?;
        Ok(SessionInput {
            user_id: self.user_id,
            session_id: self.session_id,
            username: self.username,
            api_id: self.api_id,
            api_hash: self.api_hash,
            phone: self.phone,
            session_data,
            is_authorized: self.is_authorized,
            digital_twin_enabled: self.digital_twin_enabled,
            auto_reply_enabled: self.auto_reply_enabled,
            target_chats: self.target_chats,
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "sessions",
    request_body = CreateSession,
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 201, description = "Created", body = SessionMeta),
        (status = 200, description = "Updated", body = SessionMeta),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:write", body = ErrorBody),
        (status = 409, description = "session_id owned by another user", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field (named in `field`)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn upsert(
    State(app): State<App>,
    auth: Auth<Write>,
    JsonBody(body): JsonBody<CreateSession>,
) -> AppResult<Response> {
    let input = body.into_input()?;
    let outcome = app.store.upsert(&auth.audit, &input).await?;
    let (status, meta) = match outcome {
        Upserted::Created(m) => (StatusCode::CREATED, m),
        Upserted::Updated(m) => (StatusCode::OK, m),
    };
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/sessions/{}", meta.user_id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((status, headers, Json(meta)).into_response())
}

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
    /// base64
    #[schema(value_type = Option<String>, format = Byte)]
    session_data: Option<Revealed>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// This read starts the tenant's agent (`vibee-sessions boot --api-url`):
    /// active sessions only (409 `session_inactive` otherwise), audited as
    /// `boot_load` in the same transaction that stamps `last_seen_at`, so a
    /// read-only token is all an agent host needs.
    boot: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "the user_id"), ReadParams),
    security(("bearer" = ["sessions:read"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "The session with its decrypted credentials (an audited read)", body = SessionWithCredentials),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:read (or sessions:boot)", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "`boot=true` and the session is deactivated", body = ErrorBody),
        (status = 422, description = "Invalid user_id", body = ErrorBody),
        (status = 500, description = "Stored data failed its integrity check", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<App>,
    auth: Auth<ReadOrBoot>,
    PathId(user_id): PathId<UserId>,
    QueryParams(params): QueryParams<ReadParams>,
) -> AppResult<Json<SessionWithCredentials>> {
    let found = if params.boot.unwrap_or(false) {
        app.store
            .boot_load(&auth.audit, &user_id)
            .await?
            .ok_or_else(inactive)?
    } else {
        // Audited: the read is queued before the response is sent.
        app.store.credentials(&auth.audit, &user_id).await?
    };
    let creds = found.credentials;
    Ok(Json(SessionWithCredentials {
        session: found.meta,
        api_hash: Revealed(creds.api_hash),
        phone: creds.phone.map(Revealed),
        session_data: creds
            .session_data
            .map(|d| Revealed(SecretString::from(BASE64.encode(d.expose_secret())))),
    }))
}

fn inactive() -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "session_inactive",
        "the session is deactivated; an agent is not started for it",
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1-1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Include deactivated sessions (default false).
    include_inactive: Option<bool>,
    /// Only authorized (true) or unauthorized (false) sessions.
    is_authorized: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(ListParams),
    security(("bearer" = ["sessions:list"]), ("bearer" = ["sessions:boot"])),
    responses(
        (status = 200, description = "A page of sessions, metadata only", body = Page),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:list", body = ErrorBody),
        (status = 422, description = "limit out of range, or a cursor that is not a user_id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<App>,
    auth: Auth<ListOrBoot>,
    QueryParams(params): QueryParams<ListParams>,
) -> AppResult<Json<Page>> {
    // An agent host lists what it may start: active sessions only.
    if params.include_inactive == Some(true) && !auth.token.allows(Scope::SessionsList) {
        return Err(AppError::forbidden(Scope::SessionsList.as_str()));
    }
    let limit = params.limit.unwrap_or(sessions::DEFAULT_PAGE);
    if !(1..=sessions::MAX_PAGE).contains(&limit) {
        return Err(AppError::invalid_field(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    // The cursor is a user_id: held to the same rules before it reaches a
    // query (a NUL byte in it was a 500: PostgreSQL refuses NUL in text).
    if let Some(cursor) = &params.cursor {
        UserId::parse(cursor.as_str()).map_err(|_| {
            AppError::invalid_field(
                "cursor",
                "cursor must be the next_cursor of a previous page",
            )
        })?;
    }
    let page = app
        .store
        .list(&ListQuery {
            limit,
            after: params.cursor,
            include_inactive: params.include_inactive.unwrap_or(false),
            is_authorized: params.is_authorized,
        })
        .await?;
    Ok(Json(page))
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
    #[schema(value_type = Option<Vec<Object>>)]
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
    path = "/api/v1/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "the user_id")),
    request_body = PatchSession,
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 200, description = "Updated", body = SessionMeta),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:write", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn patch(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(user_id): PathId<UserId>,
    JsonBody(body): JsonBody<PatchSession>,
) -> AppResult<Json<SessionMeta>> {
    let patch = body.into_patch();
    let meta = app
        .store
        .update_metadata(&auth.audit, &user_id, &patch)
        .await?;
    Ok(Json(meta))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Delete the row instead of deactivating it (the audit trail stays).
    purge: Option<bool>,
}

#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "the session_id"), DeleteParams),
    security(("bearer" = ["sessions:write"])),
    responses(
        (status = 204, description = "Deactivated (idempotent) or purged"),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:write", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 422, description = "Invalid session_id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(app): State<App>,
    auth: Auth<Write>,
    PathId(session_id): PathId<SessionId>,
    QueryParams(params): QueryParams<DeleteParams>,
) -> AppResult<StatusCode> {
    if params.purge.unwrap_or(false) {
        app.store.purge(&auth.audit, &session_id).await?;
    } else {
        app.store.deactivate(&auth.audit, &session_id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// Page size, 1-1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivityPage {
    activity: Vec<Activity>,
    next_cursor: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/activity",
    tag = "sessions",
    params(("id" = String, Path, description = "the user_id"), ActivityParams),
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "The audit trail, newest first", body = ActivityPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:list", body = ErrorBody),
        (status = 422, description = "Invalid user_id, or limit out of range", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn activity(
    State(app): State<App>,
    _auth: Auth<List>,
    PathId(user_id): PathId<UserId>,
    QueryParams(params): QueryParams<ActivityParams>,
) -> AppResult<Json<ActivityPage>> {
    let limit = params.limit.unwrap_or(sessions::DEFAULT_PAGE);
    if !(1..=sessions::MAX_PAGE).contains(&limit) {
        return Err(AppError::invalid_field(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    // Read-your-writes: the store flushes this process's queued events first.
    let activity = app.store.activity(&user_id, params.before, limit).await?;
    let next_cursor = (activity.len() as i64 == limit)
        .then(|| activity.last().map(|a| a.id))
        .flatten();
    Ok(Json(ActivityPage {
        activity,
        next_cursor,
    }))
}
