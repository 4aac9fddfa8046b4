//! The MTProto session blob as it travels in text (JSON, env files, the
//! boot loader's API answers): base64, in whichever form the library that
//! made it writes. Answers always use standard padded base64.

use base64::Engine;
use base64::alphabet::{STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::SecretSlice;

/// What is accepted, worded for an error message after the field's name.
pub const SESSION_DATA_BASE64: &str = "must be base64: the standard (+/) or the URL-safe (-_) \
     alphabet, with or without = padding (Pyrogram's session strings are URL-safe and unpadded)";

/// Text that is not base64 in any accepted form. Carries nothing of the
/// text: each way in words its own message (`SESSION_DATA_BASE64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBase64;

/// Decodes a base64 session blob: standard or URL-safe alphabet, padded or
/// not; whitespace around it is ignored. One alphabet per value: a value
/// mixing `+/` with `-_` is refused.
pub fn decode_session_data(text: &str) -> Result<SecretSlice<u8>, NotBase64> {
    let text = text.trim();
    let alphabet = if text.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(alphabet, config)
        .decode(text)
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

    #[test]
    fn every_base64_form_a_session_library_writes() {
        let bytes = [0xfb, 0xff, 0xbf, 0x01];
        for text in ["+/+/AQ==", "+/+/AQ", "-_-_AQ==", "-_-_AQ", " +/+/AQ==\n"] {
            assert_eq!(
                decode_session_data(text).unwrap().expose_secret(),
                &bytes,
                "{text:?}"
            );
        }
        for bad in ["+/-_AQ", "A", "===="] {
            assert_eq!(decode_session_data(bad).unwrap_err(), NotBase64, "{bad:?}");
        }
    }
}
