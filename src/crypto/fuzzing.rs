//! Entry points for the fuzz targets (`fuzz/`): not an API. The keys here
//! are fixed, public test keys made for fuzzing only; no key of a real
//! deployment ever passes through, and nothing here returns key bytes.

use std::sync::OnceLock;

use secrecy::SecretBox;

use super::data_key::{DataKey, DataKeyId, WrappedDataKey};
use super::field::{self, FieldRef};
use super::key_ring::KeyRing;
use super::master_key::MasterKey;

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let keys = (1u8..=3)
            .map(|i| {
                DataKey::from_bytes(DataKeyId(u32::from(i)), SecretBox::new(Box::new([i; 32])))
            })
            .collect();
        KeyRing::new(DataKeyId(1), keys).expect("key 1 is in the ring")
    })
}

fn master() -> &'static MasterKey {
    static MASTER: OnceLock<MasterKey> = OnceLock::new();
    MASTER.get_or_init(|| MasterKey::from_bytes(SecretBox::new(Box::new([0x42; 32]))))
}

/// Arbitrary bytes as a stored field: parsing and opening must never panic,
/// and must never succeed for bytes that were not sealed for this place.
/// Then a round trip: whatever is sealed opens to itself, and any one-byte
/// change to the stored form fails to open.
pub fn stored_field(data: &[u8]) {
    let place = FieldRef::new("user_sessions", "api_hash_encrypted", b"0123456789abcdef");
    let _ = field::peek_data_key_id(data);
    assert!(
        ring().open(&place, data).is_err(),
        "random bytes opened as a sealed value"
    );
    let sealed = ring().seal(&place, data);
    assert_eq!(field::peek_data_key_id(&sealed), Some(DataKeyId(1)));
    let opened = ring().open(&place, &sealed).expect("a sealed value opens");
    assert_eq!(opened.as_slice(), data);
    if let Some(&b) = data.first() {
        let mut tampered = sealed.clone();
        let at = usize::from(b) % tampered.len();
        tampered[at] ^= 0x01;
        assert!(
            ring().open(&place, &tampered).is_err(),
            "a tampered value opened"
        );
    }
    let elsewhere = FieldRef::new("user_sessions", "phone_encrypted", b"0123456789abcdef");
    assert!(
        ring().open(&elsewhere, &sealed).is_err(),
        "a moved value opened"
    );
}

/// Arbitrary bytes as a wrapped data key: unwrapping must fail cleanly.
pub fn wrapped_key(data: &[u8]) {
    let id = DataKeyId(data.first().copied().map(u32::from).unwrap_or(0));
    assert!(
        DataKey::unwrap(id, &WrappedDataKey(data.to_vec()), master()).is_err(),
        "random bytes unwrapped as a data key"
    );
}
