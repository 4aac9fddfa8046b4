//! What the OpenAPI document says beyond each handler's own annotation: the
//! bearer scheme, and the error answers every operation can give, declared
//! once (as crates.io does, with `4XX`/`5XX` ranges and one error schema)
//! instead of in every handler's list.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vibee-sessions",
        description = "Encrypted store of Telegram session credentials for a multi-tenant agent. \
            Every /api/v1 route but this document needs `Authorization: Bearer <token>` with the \
            scope it names. Sessions are named by `session_id` under /api/v1/sessions and by \
            `user_id` (the tenant) under /api/v1/users; see docs/API.md."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn declare(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    };
    if secured {
        add(
            "401",
            "No, malformed, unknown or revoked token (`unauthorized`; with `WWW-Authenticate: Bearer`)",
        );
        add(
            "403",
            "The token lacks the scope this operation names (`forbidden`; `required_scope` names it)",
        );
    }
    add(
        "4XX",
        "Any other client error, `code` says which: `malformed_request` or `invalid_query` (400), \
         `method_not_allowed` (405), `request_timeout` (408: the body stopped arriving), \
         `payload_too_large` (413), `unsupported_media_type` (415), `invalid_field` (422)",
    );
    add(
        "5XX",
        "`integrity_error` (500: stored data failed its check), `internal_error` (500), \
         `unavailable` or `timeout` (503: the database is down or the request took too long; retry)",
    );
}

/// The generated document with the common error answers added.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            declare(op);
        }
    }
    doc
}
