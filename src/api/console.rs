//! The operator console at `/console/`: static assets built from `console/`
//! (see docs/CONSOLE.md) and embedded in the binary, so `serve` needs nothing
//! at run time and the page fetches nothing from any other origin.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use super::ApiSettings;
use super::error::AppError;
use super::middleware::{SECURITY_HEADERS, header_value};

/// Scripts, styles and calls from this origin only; no inline script, no
/// framing, no `<base>` or form posts anywhere.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The built assets (`console/dist`, committed; `scripts/console-build.sh --check`
/// proves they match the sources).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../console/dist/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/dist/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/dist/app.css"),
    ),
];

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, *content_type)],
            *body,
        )
            .into_response(),
        None => AppError::not_found("no such console asset").into_response(),
    }
}

/// `/console`, `/console/` and its assets, with the API's security headers
/// and the console's own CSP (the API's `default-src 'none'` would block the
/// page's own script).
pub fn router(settings: &ApiSettings) -> Router {
    let mut router = Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route(
            "/console/{file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>| async move {
                asset(&file)
            }),
        );
    for (name, value) in SECURITY_HEADERS {
        let value = if name == "content-security-policy" {
            CONSOLE_CSP
        } else {
            value
        };
        router = router.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            header_value(value),
        ));
    }
    if settings.hsts {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    router
}
