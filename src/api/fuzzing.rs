//! Entry point for the request-decoding fuzz target (`fuzz/`): not an API.

use axum::http::StatusCode;

use super::extract::parse_json;
use super::session::PatchSession;
use super::sessions::CreateSession;

/// Arbitrary bytes as the JSON body of `POST /api/v1/sessions` and of
/// `PATCH /api/v1/sessions/{id}`, decoded and validated as the handlers do.
/// It must never panic, and every refusal must be a 400 or a 422.
pub fn request_body(data: &[u8]) {
    check(parse_json::<CreateSession>(data).and_then(|b| {
        let input = b.into_input()?;
        input.validate().map_err(Into::into)
    }));
    check(
        parse_json::<PatchSession>(data)
            .and_then(|b| b.into_patch().validate().map_err(Into::into)),
    );
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::domain::validate::identifier("user_id", text);
        let _ = crate::domain::validate::username(text);
        let _ = crate::domain::validate::phone(text);
        let _ = crate::domain::validate::api_hash(text);
    }
    let _ = crate::domain::validate::session_data(data);
}

fn check(result: Result<(), super::AppError>) {
    if let Err(e) = result {
        assert!(
            matches!(
                e.status(),
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "decoding failed with {}",
            e.status()
        );
    }
}
