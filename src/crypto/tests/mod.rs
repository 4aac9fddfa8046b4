//! Known-answer tests, key handling and property tests of `crypto`; the
//! golden vectors of our own format are in `vectors.rs`.

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use proptest::prelude::*;
use secrecy::{SecretBox, SecretString};

use super::aead::Cipher;
use super::data_key::{DataKey, DataKeyId};
use super::field::{self, FieldRef};
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).expect("test data is hex")
}

fn data_key(id: u32, bytes: &[u8]) -> DataKey {
    DataKey::from_bytes(
        DataKeyId(id),
        SecretBox::init_with_mut(|k: &mut [u8; 32]| k.copy_from_slice(bytes)),
    )
}

// AES-256 cases 13-16 of McGrew & Viega, "The Galois/Counter Mode of Operation"
// (the NIST GCM submission), through our own wrapper.
#[test]
fn aes_256_gcm_known_answers() {
    struct Case {
        key: &'static str,
        iv: &'static str,
        aad: &'static str,
        pt: &'static str,
        ct: &'static str,
        tag: &'static str,
    }
    let k15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    let pt15 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    let ct15 = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
    let cases = [
        Case {
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            iv: "000000000000000000000000",
            aad: "",
            pt: "",
            ct: "",
            tag: "530f8afbc74536b9a963b4f1c4cb738b",
        },
        Case {
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            iv: "000000000000000000000000",
            aad: "",
            pt: "00000000000000000000000000000000",
            ct: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919",
        },
        Case {
            key: k15,
            iv: "cafebabefacedbaddecaf888",
            aad: "",
            pt: pt15,
            ct: ct15,
            tag: "b094dac5d93471bdec1a502270e3cc6c",
        },
        Case {
            key: k15,
            iv: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            pt: &pt15[..120],
            ct: &ct15[..120],
            tag: "76fc6ece0f4e1768cddf8853bb2d551b",
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let key: [u8; 32] = unhex(c.key).try_into().unwrap();
        let iv: [u8; 12] = unhex(c.iv).try_into().unwrap();
        let cipher = Cipher::new(&key);
        let mut out = unhex(c.pt);
        cipher.seal_in_place(&iv, &unhex(c.aad), &mut out, 0);
        let expected = [unhex(c.ct), unhex(c.tag)].concat();
        assert_eq!(hex::encode(&out), hex::encode(&expected), "case {i}");
        let opened = cipher.open(&iv, &unhex(c.aad), &expected).unwrap();
        assert_eq!(opened.as_slice(), unhex(c.pt).as_slice(), "case {i}");
        let mut bad = expected.clone();
        bad[0] ^= 1;
        assert!(cipher.open(&iv, &unhex(c.aad), &bad).is_err(), "case {i}");
    }
}

// RFC 9106 section 5.3: Argon2id with secret and associated data.
#[test]
fn argon2id_rfc9106_vector() {
    let params = ParamsBuilder::new()
        .m_cost(32)
        .t_cost(3)
        .p_cost(4)
        .data(AssociatedData::new(&[0x04; 12]).unwrap())
        .output_len(32)
        .build()
        .unwrap();
    let argon =
        Argon2::new_with_secret(&[0x03; 8], Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut out = [0u8; 32];
    argon
        .hash_password_into(&[0x01; 32], &[0x02; 16], &mut out)
        .unwrap();
    assert_eq!(
        hex::encode(out),
        "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
    );
}

fn ring_with(ids: &[u32]) -> KeyRing {
    let keys = ids
        .iter()
        .map(|&id| DataKey::generate(DataKeyId(id)))
        .collect();
    KeyRing::new(DataKeyId(ids[0]), keys).unwrap()
}

const ROW_A: [u8; 16] = [0xa; 16];
const ROW_B: [u8; 16] = [0xb; 16];

#[test]
fn a_value_moved_to_another_row_or_column_fails() {
    let ring = ring_with(&[7]);
    let here = FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_A);
    let stored = ring.seal(&here, b"0123456789abcdef0123456789abcdef");
    assert!(ring.open(&here, &stored).is_ok());
    let other_row = FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_B);
    let other_column = FieldRef::new("user_sessions", "phone_encrypted", &ROW_A);
    let other_table = FieldRef::new("other", "api_hash_encrypted", &ROW_A);
    for f in [other_row, other_column, other_table] {
        assert_eq!(ring.open(&f, &stored).err(), Some(DecryptError));
    }
}

#[test]
fn every_flipped_bit_and_every_truncation_fails() {
    let ring = ring_with(&[1]);
    let f = FieldRef::new("user_sessions", "phone_encrypted", &ROW_A);
    let stored = ring.seal(&f, b"+15551234567");
    for i in 0..stored.len() {
        for bit in 0..8 {
            let mut bad = stored.clone();
            bad[i] ^= 1 << bit;
            assert!(ring.open(&f, &bad).is_err(), "byte {i} bit {bit}");
        }
    }
    for len in 0..stored.len() {
        assert!(ring.open(&f, &stored[..len]).is_err(), "truncated to {len}");
    }
    let mut extended = stored.clone();
    extended.push(0);
    assert!(ring.open(&f, &extended).is_err());
}

#[test]
fn old_keys_open_and_only_the_primary_seals() {
    let ring = ring_with(&[2, 1]);
    let f = FieldRef::new("t", "c", &ROW_A);
    let stored = ring.seal(&f, b"x");
    assert_eq!(peek_data_key_id(&stored), Some(DataKeyId(2)));
    let old = field::seal(ring.get(DataKeyId(1)).unwrap(), &f, b"y");
    assert_eq!(ring.open(&f, &old).unwrap().as_slice(), b"y");
    let without_old = ring_with(&[2]);
    assert!(without_old.open(&f, &old).is_err());
}

#[test]
fn wrapped_keys_need_the_right_master_key_and_id() {
    let (master, _) = MasterKey::generate();
    let (other, _) = MasterKey::generate();
    let key = DataKey::generate(DataKeyId(5));
    let wrapped = key.wrap(&master);
    assert!(DataKey::unwrap(DataKeyId(5), &wrapped, &master).is_ok());
    assert!(DataKey::unwrap(DataKeyId(6), &wrapped, &master).is_err());
    assert!(DataKey::unwrap(DataKeyId(5), &wrapped, &other).is_err());
    let keys = MasterKeys::new(other, None);
    let err = keys
        .unwrap_data_key(DataKeyId(5), master.kek_id(), &wrapped)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("the master key does not match the one that wrapped the data keys"),
        "{err}"
    );
    let both = MasterKeys::new(MasterKey::generate().0, Some(master));
    let kek = both.previous().unwrap().kek_id().clone();
    assert!(both.unwrap_data_key(DataKeyId(5), &kek, &wrapped).is_ok());
}

#[test]
fn rewrap_moves_a_data_key_to_the_new_master_key_unchanged() {
    let (old, _) = MasterKey::generate();
    let (new, _) = MasterKey::generate();
    let key = DataKey::generate(DataKeyId(9));
    let field = FieldRef::new("t", "c", b"row");
    let sealed = field::seal(&key, &field, b"secret");
    let wrapped = key.wrap(&old);
    let keys = MasterKeys::new(old, None);
    let old_kek = keys.current().kek_id().clone();
    let rewrapped = keys
        .rewrap_data_key(DataKeyId(9), &old_kek, &wrapped, &new)
        .unwrap();
    assert_ne!(rewrapped, wrapped);
    assert!(DataKey::unwrap(DataKeyId(9), &rewrapped, keys.current()).is_err());
    let back = DataKey::unwrap(DataKeyId(9), &rewrapped, &new).unwrap();
    assert_eq!(&field::open(&back, &field, &sealed).unwrap()[..], b"secret");
    // A key wrapped under a master key we do not hold cannot be re-wrapped.
    let (stranger, _) = MasterKey::generate();
    assert!(
        MasterKeys::new(stranger, None)
            .rewrap_data_key(DataKeyId(9), &old_kek, &wrapped, &new)
            .is_err()
    );
}

#[test]
fn master_key_parsing_names_the_problem() {
    let (_, encoded) = MasterKey::generate();
    use secrecy::ExposeSecret;
    let a = MasterKey::from_base64(encoded.expose_secret(), "MASTER_KEY").unwrap();
    let b = MasterKey::from_base64(&format!("  {}\n", encoded.expose_secret()), "X").unwrap();
    assert_eq!(a.kek_id(), b.kek_id(), "surrounding whitespace is ignored");
    let e = MasterKey::from_base64("not base64!", "MASTER_KEY")
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("MASTER_KEY is not valid base64"),
        "{e}"
    );
    let e = MasterKey::from_base64("AAAA", "MASTER_KEY").err().unwrap();
    assert!(e.to_string().contains("3 bytes"), "{e}");
}

#[cfg(unix)]
#[test]
fn key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let (_, encoded) = MasterKey::generate();
    use secrecy::ExposeSecret;
    std::fs::write(&path, encoded.expose_secret()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = MasterKey::from_file(&path).err().unwrap();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(MasterKey::from_file(&path).is_ok());
}

#[test]
fn passphrase_derivation_is_deterministic_and_bounded() {
    let params = KdfParams::generate();
    let pass = SecretString::from("correct horse battery staple");
    let a = params.derive(&pass).unwrap();
    let b = params.derive(&pass).unwrap();
    assert_eq!(a.kek_id(), b.kek_id());
    let c = params
        .derive(&SecretString::from("another passphrase"))
        .unwrap();
    assert_ne!(a.kek_id(), c.kek_id());
    for tampered in [
        KdfParams {
            m_cost_kib: 8,
            ..params.clone()
        },
        KdfParams {
            m_cost_kib: u32::MAX,
            ..params.clone()
        },
        KdfParams {
            t_cost: 1,
            ..params.clone()
        },
        KdfParams {
            t_cost: 1_000_000,
            ..params.clone()
        },
        KdfParams {
            parallelism: 0,
            ..params.clone()
        },
        KdfParams {
            salt: vec![1; 4],
            ..params.clone()
        },
    ] {
        assert!(matches!(
            tampered.derive(&pass),
            Err(KeyError::KdfParamsOutOfBounds(_))
        ));
    }
    assert!(matches!(
        params.derive(&SecretString::from("")),
        Err(KeyError::EmptyPassphrase)
    ));
}

proptest! {
    #[test]
    fn seal_then_open_round_trips(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        row in any::<[u8; 16]>(),
        id in 1u32..,
    ) {
        let ring = ring_with(&[id]);
        let f = FieldRef::new("user_sessions", "session_data_encrypted", &row);
        let stored = ring.seal(&f, &plaintext);
        prop_assert_eq!(stored.len(), plaintext.len() + HEADER_LEN + NONCE_LEN + TAG_LEN);
        let opened = ring.open(&f, &stored).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    #[test]
    fn random_bytes_never_open(garbage in proptest::collection::vec(any::<u8>(), 0..256)) {
        let ring = ring_with(&[1]);
        let f = FieldRef::new("t", "c", &ROW_A);
        prop_assert!(ring.open(&f, &garbage).is_err());
    }
}

mod vectors;
