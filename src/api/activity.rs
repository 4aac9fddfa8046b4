//! The audit trail, of a session (`/sessions/{session_id}/activity`) or of a
//! tenant (`/users/{user_id}/activity`). The trail outlives the row: a purged
//! session's is still there, so neither route needs the row to exist.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::activity::{self, Activity, TrailOf};

use super::auth::{Auth, List};
use super::error::{AppError, AppResult};
use super::extract::{QueryParams, path_id};
use super::{App, ErrorBody};

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

async fn trail(
    app: &App,
    of: TrailOf<'_>,
    params: ActivityParams,
) -> AppResult<Json<ActivityPage>> {
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
    let activity = activity::list_trail(&mut conn, of, params.before, limit).await?;
    let next_cursor = (activity.len() as i64 == limit)
        .then(|| activity.last().map(|a| a.id))
        .flatten();
    Ok(Json(ActivityPage {
        activity,
        next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}/activity",
    operation_id = "list_session_activity",
    tag = "sessions",
    params(("session_id" = String, Path, description = "the session_id"), ActivityParams),
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "The session's audit trail, newest first", body = ActivityPage),
        (status = 400, description = "A query parameter does not parse (`invalid_query`)", body = ErrorBody),
        (status = 422, description = "Invalid session_id, or limit out of range", body = ErrorBody),
    )
)]
pub async fn of_session(
    State(app): State<App>,
    Path(session_id): Path<String>,
    _auth: Auth<List>,
    QueryParams(params): QueryParams<ActivityParams>,
) -> AppResult<Json<ActivityPage>> {
    path_id("session_id", &session_id)?;
    trail(&app, TrailOf::Session(&session_id), params).await
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/activity",
    operation_id = "list_user_activity",
    tag = "users",
    params(("user_id" = String, Path, description = "the user_id (tenant)"), ActivityParams),
    security(("bearer" = ["sessions:list"])),
    responses(
        (status = 200, description = "The tenant's audit trail, newest first", body = ActivityPage),
        (status = 400, description = "A query parameter does not parse (`invalid_query`)", body = ErrorBody),
        (status = 422, description = "Invalid user_id, or limit out of range", body = ErrorBody),
    )
)]
pub async fn of_user(
    State(app): State<App>,
    Path(user_id): Path<String>,
    _auth: Auth<List>,
    QueryParams(params): QueryParams<ActivityParams>,
) -> AppResult<Json<ActivityPage>> {
    path_id("user_id", &user_id)?;
    trail(&app, TrailOf::User(&user_id), params).await
}
