//! The MTProto session blob as it travels in text (JSON, env files, the
//! boot loader's API answers): standard base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::SecretSlice;

/// Text that is not standard base64. Carries nothing of the text: each way
/// in words its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBase64;

/// Decodes a base64 session blob; whitespace around it is ignored.
pub fn decode_session_data(text: &str) -> Result<SecretSlice<u8>, NotBase64> {
    BASE64
        .decode(text.trim())
        .map(SecretSlice::from)
        .map_err(|_| NotBase64)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn decodes_trimmed_and_refuses_the_rest() {
        let blob = decode_session_data(" AAEC\n").unwrap();
        assert_eq!(blob.expose_secret(), &[0, 1, 2]);
        assert_eq!(decode_session_data("not base64!").unwrap_err(), NotBase64);
    }
}
