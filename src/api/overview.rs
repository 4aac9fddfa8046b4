//! What the operator console asks besides the resource routes: the calling
//! token's name and scopes, audit events per hour, the lease holders, the
//! master key's kind. Metadata only.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::overview::{self, HolderView, HourCount};

use super::App;
use super::auth::{Admin, AnyScope, Auth, List};
use super::error::AppResult;

/// The calling token: its name and what it may do. Never the secret.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    name: String,
    /// `sessions:read`, `sessions:write`, `sessions:list`, `admin`.
    scopes: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/token", tag = "operations", operation_id = "get_token",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The calling token's name and scopes", body = TokenView),
    ))]
pub async fn token(auth: Auth<AnyScope>) -> Json<TokenView> {
    Json(TokenView {
        name: auth.audit.actor,
        scopes: auth
            .token
            .scopes
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct HourlyActivity {
    /// 24 hours, oldest first.
    hours: Vec<HourCount>,
}

#[utoipa::path(get, path = "/api/v1/activity/hourly", tag = "operations", operation_id = "get_hourly_activity",
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "Audit events per hour over the last 24 hours", body = HourlyActivity),
    ))]
pub async fn hourly(State(app): State<App>, _auth: Auth<List>) -> AppResult<Json<HourlyActivity>> {
    let mut conn = app.conn().await?;
    Ok(Json(HourlyActivity {
        hours: overview::hourly_activity(&mut conn).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct HolderList {
    holders: Vec<HolderView>,
}

#[utoipa::path(get, path = "/api/v1/leases/holders", tag = "leases", operation_id = "list_lease_holders",
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "Every holder with a heartbeat or a live lease: heartbeat times and tenants held", body = HolderList),
    ))]
pub async fn holders(State(app): State<App>, _auth: Auth<List>) -> AppResult<Json<HolderList>> {
    let mut conn = app.conn().await?;
    Ok(Json(HolderList {
        holders: overview::holders(&mut conn).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct MasterView {
    /// `key` (256 bits from the environment or a file) or `passphrase (<kdf>)`.
    kind: String,
    /// The public fingerprint of the master key this server runs with.
    kek_id: String,
}

#[utoipa::path(get, path = "/api/v1/keys/master", tag = "operations", operation_id = "get_master_key",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The master key's kind and fingerprint. Never key material", body = MasterView),
    ))]
pub async fn master(State(app): State<App>, _auth: Auth<Admin>) -> AppResult<Json<MasterView>> {
    let mut conn = app.conn().await?;
    Ok(Json(MasterView {
        kind: overview::master_kind(&mut conn).await?,
        kek_id: app.store.vault().master().current().kek_id().to_string(),
    }))
}
