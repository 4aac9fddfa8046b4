//! The lease endpoints, for a loader that reads through the REST API (no
//! master key on the agent host). Blocking: the supervisor runs these on
//! tokio's blocking pool.

use chrono::{DateTime, Utc};
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiSource, SEGMENT};
use super::leaser::{Granted, TakeOutcome};
use super::share::Slot;
use super::{BootError, TenantConfig};

#[derive(Deserialize)]
struct LeaseBody {
    fence: i64,
    holder: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    code: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Listed {
    session_id: String,
    user_id: String,
    lease: Option<ListedLease>,
}

#[derive(Deserialize)]
struct ListedLease {
    holder: String,
}

#[derive(Deserialize)]
struct ListPage {
    sessions: Vec<Listed>,
    next_cursor: Option<String>,
}

impl ApiSource {
    /// One request with a JSON body (or none); the status and the body.
    fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), BootError> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", self.bearer().as_str())
            .header("Accept", "application/json");
        let result = match body {
            Some(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .map_err(|e| BootError::Failure(e.to_string()))?,
            ),
            None => {
                req = req.header("Content-Length", "0");
                self.agent.run(
                    req.body(())
                        .map_err(|e| BootError::Failure(e.to_string()))?,
                )
            }
        };
        let mut response = result.map_err(|e| {
            BootError::Unavailable(format!("cannot reach the API at {}: {e}", self.base))
        })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|e| {
            BootError::Unavailable(format!("{method} {url}: reading the answer failed: {e}"))
        })?;
        Ok((status, text))
    }

    fn fail(what: &str, status: u16, body: &str) -> BootError {
        let reason = serde_json::from_str::<LeaseBody>(body)
            .ok()
            .and_then(|b| b.error)
            .unwrap_or_else(|| "no error message".into());
        match status {
            401 | 403 => BootError::Denied(format!(
                "{what}: the API refused the token ({status}: {reason}); VIBEE_TOKEN needs \
                 sessions:read (and sessions:list for --all)"
            )),
            500.. => BootError::Unavailable(format!("{what}: the API failed ({status}: {reason})")),
            _ => BootError::Failure(format!("{what}: the API answered {status}: {reason}")),
        }
    }

    fn lease_url(&self, session_id: &str) -> String {
        format!(
            "{}/api/v1/sessions/{}/lease",
            self.base,
            utf8_percent_encode(session_id, SEGMENT)
        )
    }

    pub fn take_lease(
        &self,
        session_id: &str,
        holder: &str,
        ttl: i32,
    ) -> Result<TakeOutcome, BootError> {
        let what = format!("take the lease of {session_id}");
        let (status, body) = self.call(
            "POST",
            &self.lease_url(session_id),
            Some(json!({ "holder": holder, "ttl_seconds": ttl })),
        )?;
        let parsed = serde_json::from_str::<LeaseBody>(&body);
        match (status, parsed) {
            (200, Ok(b)) => Ok(TakeOutcome::Granted(Granted { fence: b.fence })),
            (409, Ok(b)) if b.code.as_deref() == Some("lease_held") => Ok(TakeOutcome::Held {
                holder: b.holder.unwrap_or_default(),
                expires_at: b.expires_at.unwrap_or_else(Utc::now),
            }),
            (404 | 409, _) => Ok(TakeOutcome::Gone),
            _ => Err(Self::fail(&what, status, &body)),
        }
    }

    pub fn renew_leases(
        &self,
        holder: &str,
        ttl: i32,
        fences: &[(String, i64)],
    ) -> Result<Vec<String>, BootError> {
        let map: serde_json::Map<String, Value> =
            fences.iter().map(|(s, f)| (s.clone(), json!(f))).collect();
        let (status, body) = self.call(
            "POST",
            &format!("{}/api/v1/leases/renew", self.base),
            Some(json!({ "holder": holder, "ttl_seconds": ttl, "fences": map })),
        )?;
        if status != 200 {
            return Err(Self::fail("renew the leases", status, &body));
        }
        #[derive(Deserialize)]
        struct Renewed {
            renewed: Vec<LeaseBodyId>,
        }
        #[derive(Deserialize)]
        struct LeaseBodyId {
            session_id: String,
        }
        let r: Renewed = serde_json::from_str(&body)
            .map_err(|e| BootError::Failure(format!("renew the leases: unexpected answer: {e}")))?;
        Ok(r.renewed.into_iter().map(|l| l.session_id).collect())
    }

    /// Takes the named sessions in one request (`POST /api/v1/leases/take`):
    /// the granted ones with their fences.
    pub fn take_leases(
        &self,
        holder: &str,
        ttl: i32,
        session_ids: &[String],
    ) -> Result<Vec<(String, i64)>, BootError> {
        let (status, body) = self.call(
            "POST",
            &format!("{}/api/v1/leases/take", self.base),
            Some(json!({ "holder": holder, "ttl_seconds": ttl, "session_ids": session_ids })),
        )?;
        if status != 200 {
            return Err(Self::fail("take the leases", status, &body));
        }
        #[derive(Deserialize)]
        struct Taken {
            granted: Vec<GrantedLease>,
        }
        #[derive(Deserialize)]
        struct GrantedLease {
            session_id: String,
            fence: i64,
        }
        let t: Taken = serde_json::from_str(&body)
            .map_err(|e| BootError::Failure(format!("take the leases: unexpected answer: {e}")))?;
        Ok(t.granted
            .into_iter()
            .map(|g| (g.session_id, g.fence))
            .collect())
    }

    /// Releases the given leases in one request (`POST /api/v1/leases/release`);
    /// the stale ones (already gone or taken over) are nothing of ours.
    pub fn release_leases(&self, holder: &str, fences: &[(String, i64)]) -> Result<(), BootError> {
        let map: serde_json::Map<String, Value> =
            fences.iter().map(|(s, f)| (s.clone(), json!(f))).collect();
        let (status, body) = self.call(
            "POST",
            &format!("{}/api/v1/leases/release", self.base),
            Some(json!({ "holder": holder, "fences": map })),
        )?;
        if status != 200 {
            return Err(Self::fail("release the leases", status, &body));
        }
        Ok(())
    }

    pub fn heartbeat(&self, holder: &str, ttl: i32) -> Result<Vec<String>, BootError> {
        let (status, body) = self.call(
            "POST",
            &format!("{}/api/v1/leases/holders", self.base),
            Some(json!({ "holder": holder, "ttl_seconds": ttl })),
        )?;
        if status != 200 {
            return Err(Self::fail("announce this loader", status, &body));
        }
        #[derive(Deserialize)]
        struct Holders {
            holders: Vec<String>,
        }
        let h: Holders = serde_json::from_str(&body)
            .map_err(|e| BootError::Failure(format!("heartbeat: unexpected answer: {e}")))?;
        Ok(h.holders)
    }

    pub fn leave(&self, holder: &str) -> Result<(), BootError> {
        let url = format!(
            "{}/api/v1/leases/holders/{}",
            self.base,
            utf8_percent_encode(holder, SEGMENT)
        );
        self.call("DELETE", &url, None).map(drop)
    }

    /// Every active session and its live holder (`GET /api/v1/sessions`).
    pub fn slots(&self) -> Result<Vec<Slot>, BootError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/api/v1/sessions?limit=1000", self.base);
            if let Some(c) = &cursor {
                url.push_str("&cursor=");
                url.extend(utf8_percent_encode(c, SEGMENT));
            }
            let (status, body) = self.call("GET", &url, None)?;
            if status != 200 {
                return Err(Self::fail("list the sessions", status, &body));
            }
            let page: ListPage = serde_json::from_str(&body)
                .map_err(|e| BootError::Failure(format!("GET sessions: unexpected answer: {e}")))?;
            out.extend(page.sessions.into_iter().map(|s| Slot {
                session_id: s.session_id,
                user_id: s.user_id,
                holder: s.lease.map(|l| l.holder),
            }));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// The credentials of the given sessions; deactivated or purged ones are skipped.
    pub fn load_slots(&self, slots: &[Slot]) -> Result<Vec<TenantConfig>, BootError> {
        let mut out = Vec::with_capacity(slots.len());
        for s in slots {
            match self.load_user(&s.user_id) {
                Ok(t) => out.push(t),
                Err(BootError::UnknownUser(_) | BootError::Inactive(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
