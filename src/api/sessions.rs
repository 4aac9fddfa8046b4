//! `/api/v1/sessions`: create or update, read with credentials, list,
//! partial update, deactivate or purge, and the audit trail.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::db::activity::{self, Activity};
use crate::db::sessions::{
    self, ListQuery, SessionInput, SessionMeta, SessionPatch, Upserted,
};

use super::auth::{Auth, List, Read, Write};
use super::error::{AppError, AppResult};
use super::extract::{JsonBody, QueryParams, path_id};
use super::{App, ErrorBody};

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
    BASE64
        .decode(encoded.expose_secret().trim())
        .map(SecretSlice::from)
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
    app.audit.flush().await?;
    let mut conn = app.conn().await?;
    let outcome = sessions::upsert(&mut conn, &app.vault, &auth.audit, &input).await?;
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

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "the user_id")),
    security(("bearer" = ["sessions:read"])),
    responses(
        (status = 200, description = "The session with its decrypted credentials (an audited read)", body = SessionWithCredentials),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:read", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 422, description = "Invalid user_id", body = ErrorBody),
        (status = 500, description = "Stored data failed its integrity check", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<App>,
    Path(user_id): Path<String>,
    auth: Auth<Read>,
) -> AppResult<Json<SessionWithCredentials>> {
    path_id("user_id", &user_id)?;
    let found = {
        let mut conn = app.conn().await?;
        sessions::read_credentials(&mut conn, &app.vault, &user_id).await?
    };
    // Queued before the response is sent; the connection is back in the pool
    // by now, so a full queue makes readers wait without starving the writer.
    app.audit
        .record(&auth.audit, sessions::credentials_read_event(&found.meta))
        .await?;
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
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "A page of sessions, metadata only, each with its live lease (holder, fence, expiry) or null", body = super::leases::ListedPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Token lacks sessions:list", body = ErrorBody),
        (status = 422, description = "limit out of range, or a cursor that is not a user_id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<App>,
    _auth: Auth<List>,
    QueryParams(params): QueryParams<ListParams>,
) -> AppResult<Json<super::leases::ListedPage>> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=sessions::MAX_PAGE).contains(&limit) {
        return Err(AppError::invalid_field(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    // The cursor is a user_id: held to the same rules before it reaches a
    // query (a NUL byte in it was a 500: PostgreSQL refuses NUL in text).
    if let Some(cursor) = &params.cursor {
        path_id("user_id", cursor).map_err(|_| {
            AppError::invalid_field(
                "cursor",
                "cursor must be the next_cursor of a previous page",
            )
        })?;
    }
    let mut conn = app.conn().await?;
    let page = sessions::list(
        &mut conn,
        &ListQuery {
            limit,
            after: params.cursor,
            include_inactive: params.include_inactive.unwrap_or(false),
            is_authorized: params.is_authorized,
        },
    )
    .await?;
    Ok(Json(super::leases::with_leases(&mut conn, page).await?))
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
    Path(user_id): Path<String>,
    auth: Auth<Write>,
    JsonBody(body): JsonBody<PatchSession>,
) -> AppResult<Json<SessionMeta>> {
    path_id("user_id", &user_id)?;
    let patch = body.into_patch();
    app.audit.flush().await?;
    let mut conn = app.conn().await?;
    let meta = sessions::update_metadata(&mut conn, &auth.audit, &user_id, &patch).await?;
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
    Path(session_id): Path<String>,
    auth: Auth<Write>,
    QueryParams(params): QueryParams<DeleteParams>,
) -> AppResult<StatusCode> {
    path_id("session_id", &session_id)?;
    app.audit.flush().await?;
    let mut conn = app.conn().await?;
    if params.purge.unwrap_or(false) {
        sessions::purge(&mut conn, &auth.audit, &session_id).await?;
    } else {
        sessions::deactivate(&mut conn, &auth.audit, &session_id).await?;
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
    Path(user_id): Path<String>,
    _auth: Auth<List>,
    QueryParams(params): QueryParams<ActivityParams>,
) -> AppResult<Json<ActivityPage>> {
    path_id("user_id", &user_id)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::invalid_field(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    // Read-your-writes: this process's queued audit events are in first.
    app.audit.flush().await?;
    let mut conn = app.conn().await?;
    let activity = activity::list_for_user(&mut conn, &user_id, params.before, limit).await?;
    let next_cursor = (activity.len() as i64 == limit)
        .then(|| activity.last().map(|a| a.id))
        .flatten();
    Ok(Json(ActivityPage {
        activity,
        next_cursor,
    }))
}
