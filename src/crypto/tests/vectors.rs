//! Golden vectors of our own format, in `tests/vectors/`: every `ok_*` file
//! must open to its plaintext and seal (with its nonce) to exactly its bytes;
//! every `fail_*` file must fail to open. The writers that made them are here
//! too, ignored: they run only when the format is changed on purpose.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

struct Vector {
    name: String,
    fields: HashMap<String, String>,
}

impl Vector {
    fn get(&self, k: &str) -> &str {
        self.fields
            .get(k)
            .unwrap_or_else(|| panic!("{}: missing `{k}`", self.name))
    }
    fn bytes(&self, k: &str) -> Vec<u8> {
        unhex(self.get(k))
    }
    /// The place a vector names: v2 vectors carry the lookup keys.
    fn place(&self, row_id: &'static [u8]) -> FieldRef<'static> {
        let f = FieldRef::new(leak(self.get("table")), leak(self.get("column")), row_id);
        match (self.fields.get("user_id"), self.fields.get("session_id")) {
            (Some(u), Some(s)) => f.looked_up_by(leak(u).as_bytes(), leak(s).as_bytes()),
            _ => f,
        }
    }
    fn version(&self) -> u8 {
        self.fields
            .get("version")
            .map_or(1, |v| v.parse().expect("version = 1 or 2"))
    }
    fn key(&self) -> DataKey {
        data_key(
            self.get("data_key_id").parse().unwrap(),
            &self.bytes("data_key"),
        )
    }
}

fn load_vectors(prefix: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(prefix) || !name.ends_with(".txt") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let fields = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.split_once('=').expect("key = value");
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        out.push(Vector { name, fields });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
fn golden_vectors_open_and_reseal_exactly() {
    let vectors = load_vectors("ok_");
    assert!(vectors.len() >= 6, "golden vectors missing");
    assert!(vectors.iter().filter(|v| v.version() == 2).count() >= 3);
    for v in vectors {
        let key = v.key();
        let row_id = leak_bytes(v.bytes("row_id"));
        let f = v.place(row_id);
        let stored = v.bytes("stored");
        assert_eq!(stored[0], v.version(), "{}", v.name);
        let opened = field::open(&key, &f, &stored).unwrap_or_else(|_| panic!("{}", v.name));
        assert_eq!(
            opened.as_slice(),
            v.bytes("plaintext").as_slice(),
            "{}",
            v.name
        );
        let nonce: [u8; 12] = v.bytes("nonce").try_into().unwrap();
        let resealed = field::seal_with_nonce(&key, &f, &v.bytes("plaintext"), &nonce, v.version());
        assert_eq!(
            hex::encode(resealed),
            v.get("stored"),
            "{}: format drifted",
            v.name
        );
    }
}

#[test]
fn failing_vectors_fail() {
    let vectors = load_vectors("fail_");
    assert!(vectors.len() >= 10, "failing vectors missing");
    for v in vectors {
        let key = v.key();
        let row_id = leak_bytes(v.bytes("row_id"));
        let f = v.place(row_id);
        assert_eq!(
            field::open(&key, &f, &v.bytes("stored")).err(),
            Some(DecryptError),
            "{} opened but must fail",
            v.name
        );
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

/// Writes the golden vector files. Run once by hand when the format is
/// deliberately changed (`VIBEE_WRITE_VECTORS=1 cargo test write_golden -- --ignored`);
/// never in CI, where the committed files are the contract.
#[test]
#[ignore]
fn write_golden_vectors() {
    if std::env::var_os("VIBEE_WRITE_VECTORS").is_none() {
        return;
    }
    let key_bytes: Vec<u8> = (0u8..32).collect();
    let row_id = unhex("0192f0e4a4c87b3c9d1e2f30415263a4");
    let key = data_key(0x0102_0304, &key_bytes);
    let write = |name: &str, lines: &[(&str, String)]| {
        let body: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        std::fs::write(vectors_dir().join(name), body).unwrap();
    };
    let cases: [(&str, &str, &[u8], [u8; 12]); 3] = [
        (
            "ok_api_hash.txt",
            "api_hash_encrypted",
            b"0123456789abcdef0123456789abcdef",
            [1; 12],
        ),
        ("ok_phone.txt", "phone_encrypted", b"+15551234567", [2; 12]),
        ("ok_empty.txt", "session_data_encrypted", b"", [3; 12]),
    ];
    for (name, column, pt, nonce) in cases {
        let f = FieldRef::new("user_sessions", column, &row_id);
        let stored = field::seal_with_nonce(&key, &f, pt, &nonce, 1);
        write(
            name,
            &[
                ("data_key_id", "16909060".into()),
                ("data_key", hex::encode(&key_bytes)),
                ("table", "user_sessions".into()),
                ("column", column.into()),
                ("row_id", hex::encode(&row_id)),
                ("plaintext", hex::encode(pt)),
                ("nonce", hex::encode(nonce)),
                ("stored", hex::encode(&stored)),
            ],
        );
    }
    let f = FieldRef::new("user_sessions", "api_hash_encrypted", &row_id);
    let good = field::seal_with_nonce(&key, &f, b"0123456789abcdef0123456789abcdef", &[1; 12], 1);
    let mut fails: Vec<(&str, &str, Vec<u8>, Vec<u8>)> = Vec::new();
    let flip = |i: usize| {
        let mut b = good.clone();
        b[i] ^= 0x01;
        b
    };
    fails.push((
        "fail_version.txt",
        "api_hash_encrypted",
        row_id.clone(),
        flip(0),
    ));
    fails.push((
        "fail_key_id.txt",
        "api_hash_encrypted",
        row_id.clone(),
        flip(4),
    ));
    fails.push((
        "fail_nonce.txt",
        "api_hash_encrypted",
        row_id.clone(),
        flip(10),
    ));
    fails.push((
        "fail_ciphertext.txt",
        "api_hash_encrypted",
        row_id.clone(),
        flip(20),
    ));
    fails.push((
        "fail_tag.txt",
        "api_hash_encrypted",
        row_id.clone(),
        flip(good.len() - 1),
    ));
    fails.push((
        "fail_truncated.txt",
        "api_hash_encrypted",
        row_id.clone(),
        good[..good.len() - 1].to_vec(),
    ));
    fails.push((
        "fail_other_column.txt",
        "phone_encrypted",
        row_id.clone(),
        good.clone(),
    ));
    let mut other_row = row_id.clone();
    other_row[15] ^= 1;
    fails.push((
        "fail_other_row.txt",
        "api_hash_encrypted",
        other_row,
        good.clone(),
    ));
    for (name, column, row, stored) in fails {
        write(
            name,
            &[
                ("data_key_id", "16909060".into()),
                ("data_key", hex::encode(&key_bytes)),
                ("table", "user_sessions".into()),
                ("column", column.into()),
                ("row_id", hex::encode(&row)),
                ("stored", hex::encode(&stored)),
            ],
        );
    }
}

/// Writes the v2 golden vectors (lookup keys bound). Same rule as above:
/// `VIBEE_WRITE_VECTORS=1 cargo test write_golden_v2 -- --ignored`, by hand.
#[test]
#[ignore]
fn write_golden_v2_vectors() {
    if std::env::var_os("VIBEE_WRITE_VECTORS").is_none() {
        return;
    }
    let key_bytes: Vec<u8> = (0u8..32).collect();
    let row_id = unhex("0192f0e4a4c87b3c9d1e2f30415263a4");
    let key = data_key(0x0102_0304, &key_bytes);
    let (user, session) = ("144022504", "9f86d081884c7d659a2feaa0c55ad015");
    let write = |name: &str, lines: &[(&str, String)]| {
        let body: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        std::fs::write(vectors_dir().join(name), body).unwrap();
    };
    let place = |column, u: &'static str, s: &'static str, row: &'static [u8]| {
        FieldRef::new("user_sessions", column, row).looked_up_by(u.as_bytes(), s.as_bytes())
    };
    let row: &'static [u8] = leak_bytes(row_id.clone());
    let cases: [(&str, &str, &[u8], [u8; 12]); 3] = [
        (
            "ok_v2_api_hash.txt",
            "api_hash_encrypted",
            b"0123456789abcdef0123456789abcdef",
            [4; 12],
        ),
        (
            "ok_v2_phone.txt",
            "phone_encrypted",
            b"+15551234567",
            [5; 12],
        ),
        ("ok_v2_empty.txt", "session_data_encrypted", b"", [6; 12]),
    ];
    let lines = |column: &str, u: &str, s: &str, row: &[u8], extra: Vec<(&'static str, String)>| {
        let mut l = vec![
            ("version", "2".to_owned()),
            ("data_key_id", "16909060".into()),
            ("data_key", hex::encode(&key_bytes)),
            ("table", "user_sessions".into()),
            ("column", column.to_owned()),
            ("row_id", hex::encode(row)),
            ("user_id", u.to_owned()),
            ("session_id", s.to_owned()),
        ];
        l.extend(extra);
        l
    };
    for (name, column, pt, nonce) in cases {
        let stored = field::seal_with_nonce(
            &key,
            &place(leak(column), user, session, row),
            pt,
            &nonce,
            2,
        );
        write(
            name,
            &lines(
                column,
                user,
                session,
                row,
                vec![
                    ("plaintext", hex::encode(pt)),
                    ("nonce", hex::encode(nonce)),
                    ("stored", hex::encode(&stored)),
                ],
            ),
        );
    }
    let good = field::seal_with_nonce(
        &key,
        &place("api_hash_encrypted", user, session, row),
        b"0123456789abcdef0123456789abcdef",
        &[4; 12],
        2,
    );
    let mut as_v1 = good.clone();
    as_v1[0] = 1;
    let mut other_row = row_id.clone();
    other_row[15] ^= 1;
    // (file, user_id, session_id, row id, ciphertext)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, Vec<u8>);
    let fails: Vec<Case> = vec![
        (
            "fail_v2_other_user_id.txt",
            "144022505",
            session,
            row_id.clone(),
            good.clone(),
        ),
        (
            "fail_v2_other_session_id.txt",
            user,
            "9f86d081884c7d659a2feaa0c55ad016",
            row_id.clone(),
            good.clone(),
        ),
        (
            "fail_v2_lookup_keys_swapped.txt",
            session,
            user,
            row_id.clone(),
            good.clone(),
        ),
        (
            "fail_v2_other_row.txt",
            user,
            session,
            other_row,
            good.clone(),
        ),
        (
            "fail_v2_relabelled_v1.txt",
            user,
            session,
            row_id.clone(),
            as_v1,
        ),
        ("fail_v2_tag.txt", user, session, row_id.clone(), {
            let mut b = good.clone();
            let last = b.len() - 1;
            b[last] ^= 1;
            b
        }),
    ];
    for (name, u, s, row, stored) in fails {
        write(
            name,
            &lines(
                "api_hash_encrypted",
                u,
                s,
                &row,
                vec![("stored", hex::encode(&stored))],
            ),
        );
    }
}

#[test]
fn v2_binds_the_lookup_keys_and_v1_still_opens() {
    let ring = ring_with(&[9]);
    let here =
        FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_A).looked_up_by(b"victim", b"s1");
    let stored = ring.seal(&here, b"secret");
    assert_eq!(stored[0], 2, "everything is sealed as v2");
    assert!(ring.open(&here, &stored).is_ok());
    for moved in [
        FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_A)
            .looked_up_by(b"attacker", b"s1"),
        FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_A).looked_up_by(b"victim", b"s2"),
        FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_A).looked_up_by(b"victims", b"1"),
        FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_A),
    ] {
        assert_eq!(ring.open(&moved, &stored).err(), Some(DecryptError));
    }
    // A v1 value opens whatever the lookup keys (they were not bound then).
    let key = ring.get(DataKeyId(9)).unwrap();
    let v1 = field::seal_with_nonce(
        key,
        &FieldRef::new("user_sessions", "api_hash_encrypted", &ROW_A),
        b"old",
        &[7; 12],
        1,
    );
    assert_eq!(ring.open(&here, &v1).unwrap().as_slice(), b"old");
}
