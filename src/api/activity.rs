//! The audit trail, of a session (`/sessions/{session_id}/activity`) or of a
//! tenant (`/users/{user_id}/activity`). The trail outlives the row: a purged
//! session's is still there, so neither route needs the row to exist.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::activity::{Activity, TrailOf};
use crate::db::sessions;
use crate::domain::{SessionId, UserId};

use super::auth::{Auth, List};
use super::error::{AppError, AppResult};
use super::extract::{PathId, QueryParams};
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
    let limit = params.limit.unwrap_or(sessions::DEFAULT_PAGE);
    if !(1..=sessions::MAX_PAGE).contains(&limit) {
        return Err(AppError::invalid_field(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    // Read-your-writes: the store flushes this process's queued events first.
    let activity = app.store.activity(of, params.before, limit).await?;
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
    _auth: Auth<List>,
    PathId(session_id): PathId<SessionId>,
    QueryParams(params): QueryParams<ActivityParams>,
) -> AppResult<Json<ActivityPage>> {
    trail(&app, TrailOf::Session(session_id.as_str()), params).await
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
    _auth: Auth<List>,
    PathId(user_id): PathId<UserId>,
    QueryParams(params): QueryParams<ActivityParams>,
) -> AppResult<Json<ActivityPage>> {
    trail(&app, TrailOf::User(user_id.as_str()), params).await
}
