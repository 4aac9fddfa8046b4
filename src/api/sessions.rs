//! `/api/v1/sessions`: create or update (by `user_id`, the tenant), and the
//! list of sessions. One session is `session.rs`, its blob `blob.rs`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use secrecy::{SecretSlice, SecretString};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::db::sessions::{self, ListQuery, SessionInput, SessionMeta, Upserted};
use crate::domain::validate::ChatRef;
use crate::domain::{UserId, decode_session_data};

use super::auth::{Auth, ListOrBoot, Write};
use super::error::{AppError, AppResult};
use super::extract::{IfMatch, JsonBody, QueryParams};
use super::leases::LeaseFence;
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
    /// The MTProto session blob, base64: standard or URL-safe alphabet,
    /// padded or not (at most 1 MiB decoded).
    #[schema(value_type = Option<String>)]
    session_data: Option<SecretString>,
    is_authorized: Option<bool>,
    digital_twin_enabled: Option<bool>,
    auto_reply_enabled: Option<bool>,
    /// Chat ids (integers) or names (strings).
    #[schema(value_type = Option<Vec<ChatRef>>)]
    target_chats: Option<Value>,
}

fn decode_blob(encoded: &SecretString) -> AppResult<SecretSlice<u8>> {
    use secrecy::ExposeSecret;
    decode_session_data(encoded.expose_secret()).map_err(|_| {
        AppError::invalid_field(
            "session_data",
            format!("session_data {}", crate::domain::SESSION_DATA_BASE64),
        )
    })
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
    params(
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only (412 when the user_id already has a session)"),
        ("If-Match" = Option<String>, Header, description = "update only the session at this ETag (412 otherwise, or when none exists)"),
        ("Lease-Fence" = Option<i64>, Header, description = "the fence of the caller's lease; required while a lease is live when the update replaces api_hash or session_data (sending the stored values again is no replacement)"),
    ),
    security(("bearer" = ["sessions:write"])),
    operation_id = "upsert_session",
    responses(
        (status = 201, description = "Created", body = SessionMeta, headers(
            ("Location" = String, description = "/api/v1/sessions/{session_id}, the new session"),
            ("ETag" = String, description = "\"<version>\""),
        )),
        (status = 200, description = "Updated", body = SessionMeta, headers(
            ("Location" = String, description = "/api/v1/sessions/{session_id}"),
            ("ETag" = String, description = "\"<version>\""),
        )),
        (status = 400, description = "Lease-Fence is not one integer (`invalid_header`); If-None-Match other than `*`, or with If-Match (`malformed_request`)", body = ErrorBody),
        (status = 409, description = "session_id owned by another user (`conflict`); the session is deactivated (`session_inactive`); a live lease and no Lease-Fence on an update that replaces api_hash or session_data (`lease_required`); a Lease-Fence that is not the live one (`stale_lease`). Nothing is written", body = ErrorBody),
        (status = 412, description = "`If-None-Match: *` and the user_id has a session, or `If-Match` names another version or no session exists (`precondition_failed`); nothing is written", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field (named in `field`)", body = ErrorBody),
    )
)]
pub async fn upsert(
    State(app): State<App>,
    auth: Auth<Write>,
    if_match: IfMatch,
    LeaseFence(fence): LeaseFence,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateSession>,
) -> AppResult<Response> {
    let input = body.into_input()?;
    let condition = match (create_only(&headers)?, if_match.versions()) {
        (true, Some(_)) => {
            return Err(AppError::bad_request(
                "If-None-Match: * (create only) and If-Match (update only) exclude each other",
            ));
        }
        (true, None) => sessions::Condition::Absent,
        (false, Some(versions)) => sessions::Condition::Version(versions),
        (false, None) => sessions::Condition::Any,
    };
    let outcome = app
        .store
        .upsert_if(&auth.audit, &input, condition, fence)
        .await?;
    let (status, meta) = match outcome {
        Upserted::Created(m) => (StatusCode::CREATED, m),
        Upserted::Updated(m) => (StatusCode::OK, m),
    };
    let version = meta.version;
    let location = HeaderValue::from_str(&format!("/api/v1/sessions/{}", meta.session_id));
    let mut response = super::session::with_etag(status, version, meta);
    // session_ids are checked to a URL-safe alphabet, so this always holds.
    if let Ok(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `If-None-Match: *` on POST means "create only"; entity tags there have no
/// meaning for a write and are refused rather than ignored.
fn create_only(headers: &HeaderMap) -> AppResult<bool> {
    let mut star = false;
    for value in headers.get_all(header::IF_NONE_MATCH) {
        match value.to_str().map(str::trim) {
            Ok("*") => star = true,
            _ => {
                return Err(AppError::bad_request(
                    "If-None-Match on POST /api/v1/sessions must be * (create only)",
                ));
            }
        }
    }
    Ok(star)
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
    /// Only the session of this tenant (a page of at most one).
    user_id: Option<String>,
    /// Search: only sessions whose user_id, session_id or username contains
    /// this (case-insensitive, 1-128 characters).
    #[param(min_length = 1, max_length = 128)]
    q: Option<String>,
    /// Only active (true) or deactivated (false) sessions; overrides `include_inactive`.
    is_active: Option<bool>,
    /// Only sessions held by a live lease (true) or free (false).
    held: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(ListParams),
    security(("bearer" = ["sessions:list"]), ("bearer" = ["sessions:boot"])),
    operation_id = "list_sessions",
    responses(
        (status = 200, description = "A page of sessions, metadata only, each with its live lease (holder, fence, expiry) or null", body = super::leases::ListedPage),
        (status = 400, description = "A query parameter does not parse (`invalid_query`)", body = ErrorBody),
        (status = 422, description = "limit out of range, a cursor or user_id that is not a user_id, or an empty or too long q", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<App>,
    auth: Auth<ListOrBoot>,
    QueryParams(params): QueryParams<ListParams>,
) -> AppResult<Json<super::leases::ListedPage>> {
    // An agent host lists what it may start: active sessions only, however
    // it asks (`is_active` overrides `include_inactive`, so both are checked).
    let asks_inactive = params.include_inactive == Some(true) || params.is_active == Some(false);
    if asks_inactive && !auth.token.allows(Scope::SessionsList) {
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
    // Held to the user_id rules before it reaches a query.
    if let Some(user_id) = &params.user_id {
        UserId::parse(user_id.as_str())?;
    }
    // PostgreSQL refuses NUL in text: held back here, not a 500.
    if let Some(q) = &params.q
        && (q.is_empty() || q.chars().count() > 128 || q.contains('\0'))
    {
        return Err(AppError::invalid_field(
            "q",
            "q must be 1-128 characters without NUL",
        ));
    }
    let page = app
        .store
        .list(&ListQuery {
            limit,
            after: params.cursor,
            include_inactive: params.include_inactive.unwrap_or(false),
            is_authorized: params.is_authorized,
            user_id: params.user_id,
            search: params.q,
            is_active: params.is_active,
            held: params.held,
        })
        .await?;
    Ok(Json(super::leases::with_leases(&app, page).await?))
}
