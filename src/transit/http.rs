//! One HTTP call to the engine: TLS verified by rustls (Mozilla's roots, or
//! only `VAULT_CACERT`'s), bounded timeouts, a few retries on what may pass
//! (a connection refused, a 5xx, a 429), metrics per operation, and the
//! engine's state as the last call left it. Never logs a body or a header.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::settings::{SettingsError, TransitSettings};

/// Per attempt: connecting, and the whole exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per call, and the pause before the second (doubled each time).
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Why a call failed. Messages name the engine and the path, never a token.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the secrets engine at {addr} is unreachable ({reason})")]
    Unreachable { addr: String, reason: String },
    #[error("the secrets engine refused {path} (403: {reason})")]
    Denied { path: String, reason: String },
    #[error("the secrets engine answered {status} to {path}: {reason}")]
    Status {
        path: String,
        status: u16,
        reason: String,
    },
}

impl CallError {
    /// True when the engine could not be asked at all (not an answer it gave).
    pub fn is_outage(&self) -> bool {
        match self {
            CallError::Unreachable { .. } => true,
            CallError::Status { status, .. } => *status >= 500,
            CallError::Denied { .. } => false,
        }
    }
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

/// The engine's errors, joined (they never echo what we sent).
pub fn reason(body: &str) -> String {
    serde_json::from_str::<Errors>(body)
        .ok()
        .filter(|e| !e.errors.is_empty())
        .map(|e| e.errors.join("; "))
        .unwrap_or_else(|| "no error message".into())
}

/// What the last call to the engine showed, for `/readyz` and the logs.
#[derive(Default)]
pub struct EngineState {
    up: AtomicBool,
    seen: AtomicBool,
    last_error: Mutex<Option<(String, Instant)>>,
}

impl EngineState {
    fn ok(&self) {
        self.seen.store(true, Ordering::Relaxed);
        let was_up = self.up.swap(true, Ordering::Relaxed);
        metrics::gauge!("vibee_transit_up").set(1.0);
        if !was_up {
            let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
            if last.take().is_some() {
                tracing::info!("the secrets engine answers again");
            }
        }
    }

    fn down(&self, why: &str) {
        self.seen.store(true, Ordering::Relaxed);
        let was_up = self.up.swap(false, Ordering::Relaxed);
        metrics::gauge!("vibee_transit_up").set(0.0);
        if was_up {
            tracing::warn!(error = %why, "the secrets engine is unreachable; serving from the key ring in memory");
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((why.to_owned(), Instant::now()));
    }

    /// `Some(true)` up, `Some(false)` down, `None` never asked.
    pub fn up(&self) -> Option<bool> {
        self.seen
            .load(Ordering::Relaxed)
            .then(|| self.up.load(Ordering::Relaxed))
    }

    /// The last outage's message and how long ago it was seen.
    pub fn last_error(&self) -> Option<(String, Duration)> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(m, at)| (m.clone(), at.elapsed()))
    }
}

pub struct Http {
    agent: ureq::Agent,
    addr: String,
    namespace: Option<String>,
    pub state: EngineState,
}

fn tls_roots(settings: &TransitSettings) -> Result<ureq::tls::RootCerts, SettingsError> {
    let Some(path) = &settings.ca_cert else {
        return Ok(ureq::tls::RootCerts::WebPki);
    };
    let pem = std::fs::read(path)
        .map_err(|e| SettingsError(format!("cannot read VAULT_CACERT {}: {e}", path.display())))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(SettingsError(format!(
            "VAULT_CACERT {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

impl Http {
    pub fn new(settings: &TransitSettings) -> Result<Self, SettingsError> {
        crate::crypto_provider::install();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(tls_roots(settings)?)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(CALL_TIMEOUT))
            // The engine's address is the only place we talk to: a proxy
            // variable meant for other traffic must not divert key material.
            .proxy(None)
            .max_redirects(0)
            .build()
            .into();
        Ok(Self {
            agent,
            addr: settings.addr.clone(),
            namespace: settings.namespace.clone(),
            state: EngineState::default(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn attempt(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, Zeroizing<String>), String> {
        let url = format!("{}/v1/{path}", self.addr);
        let result = match body {
            Some(body) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(t) = token {
                    req = req.header("X-Vault-Token", t);
                }
                if let Some(ns) = &self.namespace {
                    req = req.header("X-Vault-Namespace", ns);
                }
                req.send(body)
            }
            None => {
                let mut req = self.agent.get(&url);
                if let Some(t) = token {
                    req = req.header("X-Vault-Token", t);
                }
                if let Some(ns) = &self.namespace {
                    req = req.header("X-Vault-Namespace", ns);
                }
                req.call()
            }
        };
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("reading the answer failed: {e}"))?;
        Ok((status, Zeroizing::new(body)))
    }

    /// POSTs `body` (or GETs, for `None`) to `/v1/{path}`. A 2xx and a 400
    /// come back for the caller to read (a batch with a failed item is a 400
    /// with results); every other status is a `CallError`.
    pub fn call(
        &self,
        op: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, Zeroizing<String>), CallError> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            metrics::counter!("vibee_transit_requests_total", "op" => op).increment(1);
            match self.attempt(path, token, body) {
                Ok((status, body)) if status < 300 || status == 400 => {
                    self.state.ok();
                    return Ok((status, body));
                }
                Ok((403, body)) => {
                    self.state.ok();
                    metrics::counter!("vibee_transit_failures_total", "op" => op).increment(1);
                    return Err(CallError::Denied {
                        path: path.to_owned(),
                        reason: reason(&body),
                    });
                }
                Ok((status, body)) if status >= 500 || status == 429 => {
                    last = format!("{status}: {}", reason(&body));
                }
                Ok((status, body)) => {
                    self.state.ok();
                    metrics::counter!("vibee_transit_failures_total", "op" => op).increment(1);
                    return Err(CallError::Status {
                        path: path.to_owned(),
                        status,
                        reason: reason(&body),
                    });
                }
                Err(e) => last = e,
            }
            metrics::counter!("vibee_transit_failures_total", "op" => op).increment(1);
            if attempt < ATTEMPTS {
                std::thread::sleep(backoff);
                backoff *= 2;
            }
        }
        let err = CallError::Unreachable {
            addr: self.addr.clone(),
            reason: last,
        };
        self.state.down(&err.to_string());
        Err(err)
    }
}
