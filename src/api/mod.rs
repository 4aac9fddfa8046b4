//! The REST API (axum): one `App` state, handlers that take it and return
//! `AppResult<T>`, errors turned into statuses in one place (`error.rs`).

mod activity;
mod apidoc;
mod auth;
mod blob;
mod console;
mod error;
mod extract;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod lease_batch;
mod leases;
pub mod limits;
mod middleware;
mod ops;
mod overview;
mod session;
mod sessions;
mod snapshot;
mod users;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, Request, StatusCode, header};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::TokenUses;
pub use error::{AppError, AppResult, ErrorBody};
pub use ops::spawn_gauge_refresh;

use crate::db::activity::AuditQueue;
use crate::db::tokens::TokenCache;
use crate::db::{Pool, PooledConnection, Store, Vault};

/// Everything a handler needs, shared by all requests.
pub struct AppState {
    /// Sessions, keys and the audit queue: every audited read and every
    /// write goes through it (see `db::Store`).
    pub store: Store,
    pub metrics: PrometheusHandle,
    /// Verified tokens, kept briefly and emptied on every revocation.
    pub token_cache: Arc<TokenCache>,
    /// When set, `/metrics` needs it (or an admin token) as a bearer token.
    pub metrics_token: Option<secrecy::SecretString>,
    /// Requests in flight per token (`TOKEN_MAX_CONCURRENCY`).
    token_limits: limits::TokenLimits,
    /// Token checks that go to the database at once (a quarter of the pool).
    token_lookups: tokio::sync::Semaphore,
    /// Lookups that found nothing, to slow a flood of bogus tokens.
    failed_lookups: limits::FailedLookups,
    openapi_json: String,
    token_uses: TokenUses,
    /// `GET /api/v1/stats`, shared: one scan per `STATS_MAX_AGE_SECS`.
    stats: snapshot::Shared<crate::db::stats::Stats>,
}

pub type App = Arc<AppState>;

impl AppState {
    pub fn new(
        pool: Pool,
        vault: Arc<Vault>,
        audit: AuditQueue,
        token_cache: Arc<TokenCache>,
        metrics_token: Option<secrecy::SecretString>,
        settings: &ApiSettings,
    ) -> App {
        let lookups = (pool.status().max_size / 4).max(1);
        Arc::new(Self {
            store: Store::new(pool, vault, audit),
            token_cache,
            metrics_token,
            token_limits: limits::TokenLimits::new(
                settings.token_concurrency,
                settings.token_queue_wait,
            ),
            token_lookups: tokio::sync::Semaphore::new(lookups),
            failed_lookups: limits::FailedLookups::default(),
            metrics: metrics_handle(),
            openapi_json: openapi_json(),
            token_uses: TokenUses::default(),
            stats: snapshot::Shared::new(settings.stats_max_age),
        })
    }

    pub async fn conn(&self) -> AppResult<PooledConnection> {
        Ok(self.store.conn().await?)
    }
}

/// The request id of a request, as set or checked by the middleware.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(middleware::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn routes() -> (Router<App>, utoipa::openapi::OpenApi) {
    // Every path names one key: `{session_id}` under /sessions, `{user_id}`
    // under /users. No segment means a user_id for one method and a
    // session_id for another.
    OpenApiRouter::with_openapi(apidoc::ApiDoc::openapi())
        .routes(routes!(sessions::upsert, sessions::list))
        .routes(routes!(session::get, session::patch, session::delete))
        .routes(routes!(session::reactivate))
        .routes(routes!(activity::of_session))
        .routes(routes!(blob::get, blob::put, blob::delete))
        .routes(routes!(leases::take, leases::get, leases::release))
        .routes(routes!(leases::break_lease))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(lease_batch::take))
                .routes(routes!(lease_batch::release))
                .routes(routes!(lease_batch::renew))
                .layer(DefaultBodyLimit::max(lease_batch::BATCH_BODY_LIMIT)),
        )
        .routes(routes!(leases::heartbeat))
        .routes(routes!(leases::leave))
        .routes(routes!(users::get))
        .routes(routes!(users::session))
        .routes(routes!(activity::of_user))
        .routes(routes!(ops::stats))
        .routes(routes!(ops::keys))
        .routes(routes!(ops::openapi))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(overview::token))
        .routes(routes!(overview::hourly))
        .routes(routes!(overview::holders))
        .routes(routes!(overview::master))
        .split_for_parts()
}

/// The OpenAPI document of the API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    apidoc::finish(routes().1)
}

/// The document as served and as committed in `docs/openapi.json`, byte for
/// byte (a final newline, as editors and `git diff` expect).
pub fn openapi_json() -> String {
    let mut doc = openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    doc.push('\n');
    doc
}

/// The process-wide Prometheus recorder (metrics has one global recorder).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Drains recorded histogram samples into their buckets every `period`.
/// Without it (`install_recorder` spawns nothing) every sample of
/// `http_request_duration_seconds` stays in memory until `/metrics` is
/// scraped: a server nobody scrapes grew by ~20 bytes a request (seen in a soak run).
pub fn spawn_metrics_upkeep(
    handle: PrometheusHandle,
    period: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// `GET /api/v1/stats` counts every session: an operator console or a
/// monitoring script polling it costs at most one scan per this period.
pub const DEFAULT_STATS_MAX_AGE: Duration = Duration::from_secs(10);

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// A request (body read, database work, response) that takes longer is
    /// abandoned with a 503.
    pub request_timeout: Duration,
    /// A client that sends no byte of its body for this long gets a 408: a
    /// slow (slowloris-style) body cannot hold a connection for the whole
    /// request timeout, and it is the client's fault, not a 5xx.
    pub body_timeout: Duration,
    /// How long a client may take to send the request line and headers
    /// (applied by `serve` to the HTTP/1 connection).
    pub header_timeout: Duration,
    /// Open connections at most (`HTTP_MAX_CONNECTIONS`); past it new ones
    /// are closed at once.
    pub max_connections: usize,
    /// Requests in flight per token (`TOKEN_MAX_CONCURRENCY`); past it a
    /// request waits up to `token_queue_wait`, then 429.
    pub token_concurrency: usize,
    pub token_queue_wait: Duration,
    /// Send Strict-Transport-Security (when serving HTTPS).
    pub hsts: bool,
    /// How old the shared stats may be (`STATS_MAX_AGE_SECS`); zero: every
    /// call computes them (concurrent calls still share one computation).
    pub stats_max_age: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            token_concurrency: 32,
            token_queue_wait: Duration::from_secs(5),
            hsts: false,
            stats_max_age: DEFAULT_STATS_MAX_AGE,
        }
    }
}

/// The whole HTTP application.
pub fn router(app: App, settings: &ApiSettings) -> Router {
    let (routes, _) = routes();
    let x_request_id = HeaderName::from_static(middleware::REQUEST_ID);
    let mut router = routes
        .fallback(|| async { AppError::not_found("no such route") })
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(middleware::track_metrics))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    settings.request_timeout,
                ))
                .layer(RequestBodyTimeoutLayer::new(settings.body_timeout))
                .layer(DefaultBodyLimit::max(extract::BODY_LIMIT)),
        )
        .with_state(app);
    for (name, value) in middleware::SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            middleware::header_value(value),
        ));
    }
    if settings.hsts {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            middleware::header_value("max-age=31536000"),
        ));
    }
    router.merge(console::router(settings)).layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(middleware::sanitize_request_id))
            .layer(SetRequestIdLayer::new(
                x_request_id.clone(),
                MakeRequestUuid,
            ))
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
            ]))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            path = %req.uri().path(),
                            request_id = request_id(req.headers()).unwrap_or_default(),
                        )
                    })
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(x_request_id))
            .layer(axum::middleware::from_fn(middleware::json_errors))
            .layer(CatchPanicLayer::custom(middleware::panic_response)),
    )
}
