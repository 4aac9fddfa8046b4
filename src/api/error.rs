//! The one error type of the API, and the one place store errors become
//! HTTP statuses. Bodies are `{"error": "...", "code": "...", "field"?: "..."}`
//! and never carry a credential or the reason a decryption failed.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

/// The body of every error response: what `into_response` serializes and
/// what the OpenAPI document describes, so the two cannot drift.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person.
    error: String,
    /// What is wrong, for a program: `malformed_request`, `invalid_query`,
    /// `invalid_field`, `unauthorized`, `forbidden`, `not_found`,
    /// `no_session_data`, `method_not_allowed`, `request_timeout`,
    /// `conflict`, `session_inactive`, `precondition_failed`,
    /// `lease_held`, `stale_lease`, `no_lease`,
    /// `payload_too_large`, `unsupported_media_type`, `integrity_error`,
    /// `internal_error`, `unavailable`, `timeout`.
    #[schema(value_type = String)]
    code: &'static str,
    /// The field at fault, with `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    field: Option<&'static str>,
    /// The scope the token lacks, with `forbidden` (403).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    required_scope: Option<&'static str>,
    /// The live lease holder, with `lease_held` and `stale_lease` (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    /// When the live lease expires (the database's clock), with `holder`.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `Clone`: one failed shared computation (`snapshot`) answers each caller
/// that waited on it.
#[derive(Debug, Clone)]
pub struct AppError {
    status: StatusCode,
    body: ErrorBody,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: message.into(),
                code,
                field: None,
                required_scope: None,
                holder: None,
                expires_at: None,
            },
        }
    }

    /// 429: this caller (one token) has too many requests in flight.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
    }

    /// Names the live lease holder and its expiry (409 about a lease).
    pub fn with_lease(mut self, holder: &str, expires_at: chrono::DateTime<chrono::Utc>) -> Self {
        self.body.holder = Some(holder.to_owned());
        self.body.expires_at = Some(expires_at);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message);
        e.body.field = Some(field);
        e
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    pub fn forbidden(scope: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token lacks the scope {scope}"),
        );
        e.body.required_scope = Some(scope);
        e
    }

    /// A write to, or a credentials read of, a deactivated session.
    pub fn inactive() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "session_inactive",
            "the session is deactivated: it serves no credentials and takes no writes \
             until POST /api/v1/sessions/{session_id}/reactivate",
        )
    }

    /// A 403 for a route that accepts any of `scopes`; `required_scope`
    /// names the first (the one a general-purpose token would hold).
    pub fn forbidden_any(scopes: &[crate::db::tokens::Scope], first: &'static str) -> Self {
        if scopes.len() < 2 {
            return Self::forbidden(first);
        }
        let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token lacks the scope {}", names.join(" or ")),
        );
        e.body.required_scope = Some(first);
        e
    }

    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the request body must be sent as Content-Type: {expected}"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; retry shortly",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the request id is in the logs",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.body.code
    }
}

impl From<crate::domain::validate::Invalid> for AppError {
    fn from(i: crate::domain::validate::Invalid) -> Self {
        AppError::invalid_field(i.field, i.to_string())
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => AppError::not_found("no such session"),
            DbError::SessionIdTaken => AppError::new(
                StatusCode::CONFLICT,
                "conflict",
                "session_id is already used by another user",
            ),
            DbError::Invalid(i) => AppError::invalid_field(i.field, i.to_string()),
            DbError::Inactive => AppError::inactive(),
            DbError::PreconditionFailed(why) => {
                AppError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", why)
            }
            DbError::VersionMismatch { current } => AppError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!(
                    "the session is at version {current} (ETag \"{current}\"), not one If-Match names"
                ),
            ),
            DbError::Integrity { .. } => {
                // Logged with its place where it was detected; the caller
                // learns only that stored data failed its check.
                AppError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "integrity_error",
                    "stored data failed its integrity check",
                )
            }
            DbError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                AppError::unavailable()
            }
            stale @ (DbError::StaleKey | DbError::KeyRingStale(_)) => {
                tracing::warn!(error = %stale, "not encrypting: the key ring is stale");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "key_ring_stale",
                    "this server's key ring is stale and it does not encrypt until it reloads; \
                     retry (another replica may serve)",
                )
            }
            DbError::NoSchema => {
                tracing::error!("database schema missing: run `vibee-sessions migrate`");
                AppError::unavailable()
            }
            DbError::LeaseRequired => AppError::new(
                StatusCode::CONFLICT,
                "lease_required",
                "a live lease holds this session: send its fence in Lease-Fence",
            ),
            DbError::StaleFence => AppError::new(
                StatusCode::CONFLICT,
                "stale_lease",
                "Lease-Fence is not the fence of the live lease; this writer lost the lease",
            ),
            DbError::LeaseHeld(lease) => super::leases::held(&lease),
            DbError::Conflict(reason) => AppError::new(StatusCode::CONFLICT, "conflict", reason),
            other @ (DbError::Key(_)
            | DbError::Query(_)
            | DbError::Migration(_)
            | DbError::Internal(_)) => {
                tracing::error!(error = %other, "request failed");
                AppError::internal()
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
