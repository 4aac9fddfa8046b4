//! Operations: liveness, readiness, metrics, key status, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use diesel_async::RunQueryDsl;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::keys::{self, KeyStatus};
use crate::db::stats::Stats;

use super::auth::{Admin, Auth, List};
use super::error::{AppError, AppResult};
use super::snapshot::Freshness;
use super::{App, ErrorBody};
use crate::db::tokens::Scope;

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up. Touches nothing else.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The master key as `/readyz` reports it. For transit, the engine's state
/// as the last call to it (or the periodic `sys/health` probe) found it:
/// readiness never calls the engine itself, and an engine that is down does
/// not make the service unready (the key ring is in memory).
#[derive(Serialize, ToSchema)]
pub struct MasterKeyState {
    /// `local` or `transit`.
    kind: &'static str,
    kek_id: String,
    /// Transit only: `up`, `down`, or `unknown` (not asked yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<&'static str>,
    /// Transit only: the last outage seen, and how many seconds ago.
    #[serde(skip_serializing_if = "Option::is_none")]
    engine_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine_error_secs_ago: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    status: &'static str,
    primary_data_key: u32,
    master_key: MasterKeyState,
}

fn master_key_state(app: &App) -> MasterKeyState {
    let kek = app.store.vault().master().current();
    let transit = kek.transit();
    let error = transit.and_then(|t| t.last_error());
    MasterKeyState {
        kind: kek.kind(),
        kek_id: kek.kek_id().to_string(),
        engine: transit.map(|t| match t.engine_up() {
            Some(true) => "up",
            Some(false) => "down",
            None => "unknown",
        }),
        engine_error: error.as_ref().map(|(m, _)| m.clone()),
        engine_error_secs_ago: error.map(|(_, ago)| ago.as_secs()),
    }
}

/// The database answers and the key ring is loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready; the body names the master key and, for transit, the engine's state", body = Ready),
        (status = 503, description = "Database unreachable (`unavailable`)", body = ErrorBody),
    ))]
pub async fn readyz(State(app): State<App>) -> AppResult<Json<Ready>> {
    let mut conn = app.conn().await?;
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(crate::db::DbError::from)?;
    // The ring is loaded before the server starts; a primary is always present.
    Ok(Json(Ready {
        status: "ready",
        primary_data_key: app.store.vault().ring().primary_id().0,
        master_key: master_key_state(&app),
    }))
}

/// Prometheus text format. Computes nothing that needs the database (the
/// key gauges come from `spawn_gauge_refresh`'s timer), so a scrape never
/// takes a pool connection. With `METRICS_TOKEN` set it needs
/// `Authorization: Bearer` with that token, or an API token with `admin`.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus metrics", content_type = "text/plain", body = String),
        (status = 401, description = "METRICS_TOKEN is set and no or a wrong token was sent", body = ErrorBody),
        (status = 403, description = "An API token without admin", body = ErrorBody),
    ))]
pub async fn metrics(State(app): State<App>, headers: HeaderMap) -> AppResult<Response> {
    if let Some(expected) = &app.metrics_token {
        authorize_scrape(&app, expected, &headers).await?;
    }
    let status = app.store.pool_status();
    metrics::gauge!("vibee_db_pool_connections").set(status.size as f64);
    metrics::gauge!("vibee_db_pool_available").set(status.available as f64);
    metrics::gauge!("vibee_db_pool_waiting").set(status.waiting as f64);
    metrics::gauge!("vibee_db_pool_max").set(status.max_size as f64);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response())
}

async fn authorize_scrape(
    app: &App,
    expected: &SecretString,
    headers: &HeaderMap,
) -> AppResult<()> {
    use subtle::ConstantTimeEq;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(AppError::unauthorized)?;
    if bool::from(
        presented
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    ) {
        return Ok(());
    }
    match super::auth::authenticate(app, presented).await? {
        Some(token) if token.allows(Scope::Admin) => Ok(()),
        Some(_) => Err(AppError::forbidden(Scope::Admin.as_str())),
        None => Err(AppError::unauthorized()),
    }
}

/// Session counts and last activity: what operators watch. They count every
/// session, so every caller of this process shares one computation, at most
/// `STATS_MAX_AGE_SECS` old (`as_of`, `Age`); `Cache-Control: no-cache`
/// waits for one that starts after the request arrived.
#[utoipa::path(get, path = "/api/v1/stats", tag = "operations", operation_id = "get_stats",
    security(("bearer" = ["sessions:list"])),
    params(
        ("Cache-Control" = Option<String>, Header, description = "`no-cache` (or `max-age=0`): figures computed after this request arrived, so every change made before it is counted; otherwise they may be up to STATS_MAX_AGE_SECS (default 10) old"),
    ),
    responses(
        (status = 200, description = "Active, authorized and inactive sessions; last activity; sessions per data key; `as_of`, when they were computed",
            body = Stats, headers(("Age" = u64, description = "seconds since the figures were computed"))),
    ))]
pub async fn stats(
    State(app): State<App>,
    _auth: Auth<List>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let computing = app.clone();
    let snapshot = app
        .stats
        .get(stats_freshness(&headers), move || async move {
            metrics::counter!("vibee_stats_computations_total").increment(1);
            let started = std::time::Instant::now();
            let stats = computing.store.stats().await;
            metrics::histogram!("vibee_stats_computation_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            Ok(stats?)
        })
        .await?;
    let age = snapshot.age().as_secs().to_string();
    Ok(([(header::AGE, age)], Json(&snapshot.value)).into_response())
}

/// RFC 9111 request directives: `no-cache`, or `max-age=0`, ask for figures
/// computed anew. Other directives (and other `max-age`s) take the shared copy.
fn stats_freshness(headers: &HeaderMap) -> Freshness {
    let revalidate = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|d| d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("max-age=0"));
    if revalidate {
        Freshness::Revalidate
    } else {
        Freshness::WithinMaxAge
    }
}

/// Encryptions and rows per data key (the nonce budget) and this process's
/// primary, every `period`: counting rows per key is a query over
/// `user_sessions`, which a scrape (anyone's, as often as they like) must not
/// cost. A failed round leaves the last figures and is retried next period.
pub fn spawn_gauge_refresh(app: App, period: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            record_key_gauges(&app).await;
        }
    })
}

async fn record_key_gauges(app: &App) {
    metrics::gauge!("vibee_primary_data_key_id")
        .set(f64::from(app.store.vault().ring().primary_id().0));
    let Ok(mut conn) = app.store.conn().await else {
        return;
    };
    match keys::key_status(&mut conn).await {
        Ok(keys) => {
            for k in keys {
                let labels = [
                    ("data_key_id", k.id.to_string()),
                    ("state", k.state.as_str().to_owned()),
                ];
                metrics::gauge!("vibee_data_key_encryptions", &labels).set(k.encryptions as f64);
                metrics::gauge!("vibee_data_key_rows", &labels).set(k.rows as f64);
            }
        }
        Err(e) => tracing::debug!(error = %e, "key gauges not refreshed"),
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeysView {
    /// Fingerprint of the master key this server runs with.
    kek_id: String,
    keys: Vec<KeyStatus>,
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "operations", operation_id = "list_keys",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Data keys: ids, states, rows and encryptions. Never key material", body = KeysView),
    ))]
pub async fn keys(State(app): State<App>, _auth: Auth<Admin>) -> AppResult<Json<KeysView>> {
    let mut conn = app.conn().await?;
    let keys = keys::key_status(&mut conn).await?;
    Ok(Json(KeysView {
        kek_id: app.store.vault().master().current().kek_id().to_string(),
        keys,
    }))
}

/// This document (OpenAPI 3.1). It holds no data, so it needs no token:
/// client generators (`openapi-python-client generate --url ...`) fetch it
/// as it is.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "get_openapi",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
    ))]
pub async fn openapi(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.openapi_json.clone(),
    )
}
