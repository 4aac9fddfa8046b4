//! Request extractors whose every rejection is one of our JSON errors, and
//! whose messages name the field at fault without echoing its value.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::AppError;

use crate::domain::validate::MAX_SESSION_DATA_LEN;

/// Request bodies larger than this are refused with 413 before parsing: the
/// largest blob in base64 (4/3 of it) and room for the other fields.
pub const BODY_LIMIT: usize = MAX_SESSION_DATA_LEN / 3 * 4 + 64 * 1024;

fn content_type_is(req: &Request, expected: &str) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
    limit: usize,
) -> Result<Bytes, AppError> {
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::payload_too_large(limit)
        } else if caused_by_body_timeout(&rejection) {
            AppError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body stopped arriving; send it at once",
            )
        } else {
            AppError::bad_request("the request body could not be read")
        }
    })?;
    if bytes.len() > limit {
        return Err(AppError::payload_too_large(limit));
    }
    Ok(bytes)
}

/// Whether the body failed because the client stopped sending it
/// (`RequestBodyTimeoutLayer`).
fn caused_by_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// A JSON body (`Content-Type: application/json`).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !content_type_is(&req, "application/json") {
            return Err(AppError::unsupported_media_type("application/json"));
        }
        let bytes = body_bytes(req, state, BODY_LIMIT).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON; a syntax error is 400, a wrong field is 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Deeply nested input is refused by serde_json's recursion limit (128).
    let value = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => v,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                return Err(not_json(&inner));
            }
            // A data error may come before a syntax error later in the body:
            // malformed JSON is reported as such, whatever it held.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(not_json(&syntax));
            }
            return Err(field_error(&path, &inner.to_string()));
        }
    };
    de.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

fn not_json(e: &serde_json::Error) -> AppError {
    AppError::bad_request(format!(
        "the request body is not valid JSON (line {}, column {})",
        e.line(),
        e.column()
    ))
}

/// Turns serde's message into one that names the field and the expectation
/// but never repeats the value that was sent.
fn field_error(path: &str, message: &str) -> AppError {
    let field_from = |msg: &str| -> Option<String> {
        let start = msg.find('`')? + 1;
        let end = start + msg[start..].find('`')?;
        Some(msg[start..end].to_owned())
    };
    let (field, text) = if message.starts_with("missing field") {
        let f = field_from(message).unwrap_or_else(|| path.to_owned());
        let text = format!("{f} is required");
        (f, text)
    } else if message.starts_with("unknown field") {
        let f = field_from(message).unwrap_or_else(|| path.to_owned());
        let text = format!("{f} is not a field of this request");
        (f, text)
    } else {
        let expected = message
            .rsplit_once(", expected ")
            .map(|(_, e)| e.split(" at line").next().unwrap_or(e).to_owned());
        let f = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        };
        let text = match expected {
            Some(e) => format!("{f} has the wrong type or value: expected {e}"),
            None => format!("{f} has the wrong type or value"),
        };
        (f, text)
    };
    AppError::invalid_field(known_field(&field), text)
}

/// Maps a field path to a static name for the error body.
fn known_field(path: &str) -> &'static str {
    const FIELDS: &[&str] = &[
        "user_id",
        "session_id",
        "username",
        "api_id",
        "api_hash",
        "phone",
        "session_data",
        "is_authorized",
        "digital_twin_enabled",
        "auto_reply_enabled",
        "target_chats",
        "last_seen_at",
        "holder",
        "ttl_seconds",
        "fences",
    ];
    let head = path.split(['.', '[']).next().unwrap_or(path);
    FIELDS
        .iter()
        .find(|f| **f == head)
        .copied()
        .unwrap_or("body")
}

/// A raw binary body (`Content-Type: application/octet-stream`) of at most
/// `MAX_SESSION_DATA_LEN` bytes (413 past it). It is handed on as the one
/// buffer it was read into (`Vec::from(Bytes)` takes the allocation over).
pub struct OctetStream(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for OctetStream {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !content_type_is(&req, "application/octet-stream") {
            return Err(AppError::unsupported_media_type("application/octet-stream"));
        }
        body_bytes(req, state, MAX_SESSION_DATA_LEN)
            .await
            .map(OctetStream)
    }
}

/// Query parameters; a malformed query string is 400, an invalid value 422.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                AppError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("query parameter {path} is invalid: {}", e.into_inner()),
                )
            })
    }
}

/// A path segment parsed into its domain type (`PathId<UserId>`,
/// `PathId<SessionId>`): the handler's signature says which key `{id}` is.
/// A value that breaks the rules is a 422 naming the field. Put it after
/// `Auth` in a handler's arguments: 401 and 403 are answered before 422.
pub struct PathId<T>(pub T);

impl<S, T> FromRequestParts<S> for PathId<T>
where
    S: Send + Sync,
    T: std::str::FromStr<Err = crate::domain::validate::Invalid>,
{
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        // axum's own answer for a segment that is not UTF-8, as before.
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        raw.parse()
            .map(PathId)
            .map_err(|i| AppError::from(i).into_response())
    }
}

/// `If-Match` (RFC 9110 13.1.1): `None` when absent or `*` (the write then
/// needs only the session to exist), else the versions its strong entity
/// tags name (`"7"`). A weak tag (`W/"7"`) never matches a strong comparison.
pub struct IfMatch(pub Option<Vec<i64>>);

impl IfMatch {
    pub fn versions(&self) -> Option<&[i64]> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let mut versions = Vec::new();
        let mut any = false;
        let mut present = false;
        for value in parts.headers.get_all(axum::http::header::IF_MATCH) {
            present = true;
            let bad = || {
                AppError::bad_request(
                    "If-Match must be * or a list of entity tags such as \"7\" (the ETag of a session answer)",
                )
            };
            let text = value.to_str().map_err(|_| bad())?;
            for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    any = true;
                } else if let Some(weak) = tag.strip_prefix("W/") {
                    weak.strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .ok_or_else(bad)?;
                } else {
                    let inner = tag
                        .strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .ok_or_else(bad)?;
                    // A tag that is not one of ours matches no version.
                    if let Ok(v) = inner.parse::<i64>() {
                        versions.push(v);
                    }
                }
            }
        }
        Ok(IfMatch((present && !any).then_some(versions)))
    }
}

/// The `ETag` of a session at `version`.
pub fn etag(version: i64) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(&format!("\"{version}\""))
        .expect("a quoted integer is a valid header value")
}
