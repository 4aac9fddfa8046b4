//! The REST API source: a `sessions:read` token instead of the master key,
//! so an agent host never holds it. The server audits every read under the
//! token's name; `last_seen_at` is stamped with a PATCH after each load.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::domain::decode_session_data;

use super::{BootError, TenantConfig};

/// Everything but the unreserved characters of RFC 3986 is escaped.
pub(super) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const PAGE: u32 = 500;

/// `GET /api/v1/users/{user_id}/session`.
#[derive(Deserialize)]
struct Credentials {
    user_id: String,
    session_id: String,
    username: Option<String>,
    api_id: i32,
    api_hash: String,
    phone: Option<String>,
    session_data: Option<String>,
    is_active: bool,
    digital_twin_enabled: bool,
    auto_reply_enabled: bool,
    #[serde(default)]
    target_chats: Value,
}

/// One element of `GET /api/v1/sessions`.
#[derive(Deserialize)]
struct Listed {
    user_id: String,
}

#[derive(Deserialize)]
struct ListPage {
    sessions: Vec<Listed>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    code: String,
}

pub struct ApiSource {
    pub(super) agent: ureq::Agent,
    pub(super) base: String,
    token: SecretString,
}

impl ApiSource {
    pub fn new(base_url: &str, token: SecretString) -> Result<Self, BootError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(BootError::Config(format!(
                "--api-url must be an http:// or https:// URL, not {base}"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Self { agent, base, token })
    }

    pub(super) fn bearer(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("Bearer {}", self.token.expose_secret()))
    }

    /// A tenant's session with its credentials (the API's user_id route).
    fn credentials_url(&self, user_id: &str) -> String {
        format!(
            "{}/api/v1/users/{}/session",
            self.base,
            utf8_percent_encode(user_id, SEGMENT)
        )
    }

    /// A session by its own id (the API's session_id routes).
    pub(super) fn session_url(&self, session_id: &str) -> String {
        format!(
            "{}/api/v1/sessions/{}",
            self.base,
            utf8_percent_encode(session_id, SEGMENT)
        )
    }

    /// The body of a 2xx answer; every other status becomes a `BootError`.
    fn answer(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        not_found: impl FnOnce() -> BootError,
    ) -> Result<Zeroizing<String>, BootError> {
        let mut response = result.map_err(|e| {
            BootError::Unavailable(format!("cannot reach the API at {}: {e}", self.base))
        })?;
        let status = response.status().as_u16();
        let body = Zeroizing::new(response.body_mut().read_to_string().map_err(|e| {
            BootError::Unavailable(format!("{what}: reading the answer failed: {e}"))
        })?);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let (reason, code) = serde_json::from_str::<ErrorBody>(&body)
            .map(|b| (b.error, b.code))
            .unwrap_or_else(|_| ("no error message".into(), String::new()));
        Err(match status {
            404 => not_found(),
            // A deactivated session serves no credentials (docs/API.md).
            409 if code == "session_inactive" => BootError::Inactive(what.to_owned()),
            401 | 403 => BootError::Denied(format!(
                "{what}: the API refused the token ({status}: {reason}); \
                 VIBEE_TOKEN needs the sessions:read scope"
            )),
            500.. => BootError::Unavailable(format!("{what}: the API failed ({status}: {reason})")),
            _ => BootError::Failure(format!("{what}: the API answered {status}: {reason}")),
        })
    }

    fn get_credentials(&self, user_id: &str) -> Result<Credentials, BootError> {
        let what = format!("GET session {user_id}");
        let result = self
            .agent
            .get(&self.credentials_url(user_id))
            .header("Authorization", self.bearer().as_str())
            .header("Accept", "application/json")
            .call();
        let body = self.answer(&what, result, || BootError::UnknownUser(user_id.to_owned()))?;
        serde_json::from_str(&body)
            .map_err(|e| BootError::Failure(format!("{what}: unexpected answer from the API: {e}")))
    }

    fn touch(&self, user_id: &str, session_id: &str) -> Result<(), BootError> {
        let body = serde_json::json!({ "last_seen_at": chrono::Utc::now().to_rfc3339() });
        let result = self
            .agent
            .patch(&self.session_url(session_id))
            .header("Authorization", self.bearer().as_str())
            .header("Content-Type", "application/json")
            .send(body.to_string());
        self.answer(&format!("PATCH session {user_id}"), result, || {
            BootError::UnknownUser(user_id.to_owned())
        })?;
        Ok(())
    }

    fn config(&self, c: Credentials) -> Result<TenantConfig, BootError> {
        let session_data = c
            .session_data
            .map(|b64| {
                let b64 = Zeroizing::new(b64);
                decode_session_data(&b64).map_err(|_| {
                    BootError::Failure(format!(
                        "the API sent session_data of user_id {} that is not base64",
                        c.user_id
                    ))
                })
            })
            .transpose()?;
        Ok(TenantConfig {
            user_id: c.user_id,
            session_id: c.session_id,
            username: c.username,
            api_id: c.api_id,
            api_hash: SecretString::from(c.api_hash),
            phone: c.phone.map(SecretString::from),
            session_data,
            digital_twin_enabled: c.digital_twin_enabled,
            auto_reply_enabled: c.auto_reply_enabled,
            target_chats: if c.target_chats.is_null() {
                Value::Array(Vec::new())
            } else {
                c.target_chats
            },
        })
    }

    pub fn load_user(&self, user_id: &str) -> Result<TenantConfig, BootError> {
        let c = self.get_credentials(user_id).map_err(|e| match e {
            BootError::Inactive(_) => BootError::Inactive(user_id.to_owned()),
            other => other,
        })?;
        if !c.is_active {
            return Err(BootError::Inactive(user_id.to_owned()));
        }
        self.touch(user_id, &c.session_id)?;
        self.config(c)
    }

    /// Every active session, handed to `sink` one at a time; returns how many.
    pub fn load_all(
        &self,
        sink: &mut dyn FnMut(TenantConfig) -> Result<(), BootError>,
    ) -> Result<usize, BootError> {
        let mut cursor: Option<String> = None;
        let mut count = 0;
        loop {
            let mut url = format!("{}/api/v1/sessions?limit={PAGE}", self.base);
            if let Some(c) = &cursor {
                url.push_str("&cursor=");
                url.extend(utf8_percent_encode(c, SEGMENT));
            }
            let result = self
                .agent
                .get(&url)
                .header("Authorization", self.bearer().as_str())
                .header("Accept", "application/json")
                .call();
            let body = self.answer("GET sessions", result, || {
                BootError::Failure("GET sessions: the API has no /api/v1/sessions".into())
            })?;
            let page: ListPage = serde_json::from_str(&body).map_err(|e| {
                BootError::Failure(format!("GET sessions: unexpected answer from the API: {e}"))
            })?;
            for listed in page.sessions {
                let c = match self.get_credentials(&listed.user_id) {
                    // Deactivated or purged since the listing: not ours to start.
                    Err(BootError::UnknownUser(_) | BootError::Inactive(_)) => continue,
                    other => other?,
                };
                if !c.is_active {
                    continue;
                }
                self.touch(&listed.user_id, &c.session_id)?;
                sink(self.config(c)?)?;
                count += 1;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(count),
            }
        }
    }
}
