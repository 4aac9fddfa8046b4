//! Operations: liveness, readiness, metrics, key status, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::keys::{self, KeyStatus};
use crate::db::stats::Stats;

use super::auth::{Admin, Auth, List};
use super::error::AppResult;
use super::{App, ErrorBody};

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

/// The database answers and the key ring is loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Database unreachable (`unavailable`)", body = ErrorBody),
    ))]
pub async fn readyz(State(app): State<App>) -> AppResult<Json<Health>> {
    let mut conn = app.conn().await?;
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(crate::db::DbError::from)?;
    // The ring is loaded before the server starts; a primary is always present.
    let _ = app.store.vault().ring().primary_id();
    Ok(Json(Health { status: "ready" }))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<App>) -> impl IntoResponse {
    record_key_gauges(&app).await;
    let status = app.store.pool_status();
    metrics::gauge!("vibee_db_pool_connections").set(status.size as f64);
    metrics::gauge!("vibee_db_pool_available").set(status.available as f64);
    metrics::gauge!("vibee_db_pool_waiting").set(status.waiting as f64);
    metrics::gauge!("vibee_db_pool_max").set(status.max_size as f64);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// Session counts and last activity: what operators watch.
#[utoipa::path(get, path = "/api/v1/stats", tag = "operations", operation_id = "get_stats",
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "Active, authorized and inactive sessions; last activity; sessions per data key", body = Stats),
    ))]
pub async fn stats(State(app): State<App>, _auth: Auth<List>) -> AppResult<Json<Stats>> {
    Ok(Json(app.store.stats().await?))
}

/// Encryptions per data key (the nonce budget) and this process's primary.
/// A database error here must not fail the scrape: the figures are skipped.
async fn record_key_gauges(app: &App) {
    metrics::gauge!("vibee_primary_data_key_id")
        .set(f64::from(app.store.vault().ring().primary_id().0));
    let Ok(mut conn) = app.store.conn().await else {
        return;
    };
    if let Ok(keys) = keys::key_status(&mut conn).await {
        for k in keys {
            let labels = [
                ("data_key_id", k.id.to_string()),
                ("state", k.state.as_str().to_owned()),
            ];
            metrics::gauge!("vibee_data_key_encryptions", &labels).set(k.encryptions as f64);
            metrics::gauge!("vibee_data_key_rows", &labels).set(k.rows as f64);
        }
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
