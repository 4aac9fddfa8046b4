//! Secrets never leave in the clear: a full `pg_dump` of a database holding
//! sessions, and every log line written at TRACE level while they were stored,
//! read, updated, rejected and tampered with, contain none of the plaintexts.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::TestStore;
use secrecy::{SecretSlice, SecretString};
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::sessions::{self, SessionInput};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every form a plaintext could leak in: as is, hex (how pg_dump shows bytea),
/// and base64.
fn forms(secret: &[u8]) -> Vec<String> {
    let mut out = vec![
        hex::encode(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
    ];
    if let Ok(s) = std::str::from_utf8(secret) {
        out.push(s.to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_plaintext_in_the_database_dump_or_the_logs() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let TestStore {
        db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    let ctx = AuditContext {
        actor: "secrets-test".into(),
        request_id: None,
    };

    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for i in 0..5u8 {
        let api_hash = format!("{:032x}", 0x5ec2e7_u128 * 1_000_003 + u128::from(i));
        let phone = format!("+1999888{i:04}");
        let blob: Vec<u8> = format!("MTPROTO-AUTH-KEY-{i}-")
            .bytes()
            .chain((0..300u16).map(|b| (b as u8).wrapping_mul(31).wrapping_add(i)))
            .collect();
        secrets.extend([
            api_hash.clone().into_bytes(),
            phone.clone().into_bytes(),
            blob.clone(),
        ]);
        let input = SessionInput {
            user_id: format!("tenant-{i}"),
            api_id: 100 + i32::from(i),
            api_hash: SecretString::from(api_hash),
            phone: Some(SecretString::from(phone)),
            session_data: Some(SecretSlice::from(blob)),
            ..Default::default()
        };
        sessions::upsert(&mut conn, &vault, &ctx, &input)
            .await
            .unwrap();
        sessions::upsert(&mut conn, &vault, &ctx, &input)
            .await
            .unwrap();
        sessions::get_credentials(&mut conn, &vault, &ctx, &input.user_id)
            .await
            .unwrap();
    }
    // A rejected write must not echo the rejected value either.
    let bad_phone = "+0000111122223333444";
    let rejected = SessionInput {
        user_id: "tenant-bad".into(),
        api_id: 1,
        api_hash: SecretString::from("0123456789abcdef0123456789abcdef"),
        phone: Some(SecretString::from(bad_phone)),
        ..Default::default()
    };
    let err = sessions::upsert(&mut conn, &vault, &ctx, &rejected)
        .await
        .err()
        .unwrap();
    assert!(!err.to_string().contains(bad_phone));
    secrets.push(bad_phone.as_bytes().to_vec());
    // An integrity failure is logged: where, never what.
    db.client()
        .await
        .batch_execute("UPDATE user_sessions SET phone_encrypted = api_hash_encrypted WHERE user_id = 'tenant-0'")
        .await
        .unwrap();
    let err = sessions::get_credentials(&mut conn, &vault, &ctx, "tenant-0")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("integrity"));

    let dump = std::process::Command::new("pg_dump")
        .arg("--no-owner")
        .arg(format!("--dbname={}", db.url))
        .output()
        .expect("pg_dump runs (install postgresql-client)");
    assert!(
        dump.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8(dump.stdout).unwrap();
    assert!(dump.contains("tenant-3"), "the dump holds the sessions");
    assert!(
        dump.contains("COPY public.session_activity"),
        "the dump holds the audit log"
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("integrity"),
        "the integrity failure was logged"
    );
    assert!(
        logs.len() > 1000,
        "TRACE logging captured the run ({} bytes)",
        logs.len()
    );

    for secret in &secrets {
        for form in forms(secret) {
            assert!(!dump.contains(&form), "a plaintext is in the database dump");
            assert!(!logs.contains(&form), "a plaintext is in the logs");
        }
    }
}

/// The lease routes and the fenced writes through a real `serve` at TRACE:
/// a lease taken, renewed, taken over, released and broken; upserts and
/// blob writes accepted under the live fence and refused without it or
/// under a stale one (each refused body carrying a plaintext of its own);
/// a `sessions:boot` token's reads and its refused write. Neither the
/// server's log, nor a `pg_dump` (sessions, leases, holders, audit rows),
/// holds any plaintext, bearer token or the master key.
#[tokio::test(flavor = "multi_thread")]
async fn no_plaintext_from_leases_and_fenced_writes() {
    use common::leases::{expire, release, take};
    use common::server::{Server, create_token};
    use serde_json::json;

    let db = common::TestDb::new().await;
    let key = common::TestKey::generate();
    let mut server = Server::start_with(&db, &key, &[("RUST_LOG", "trace")]);
    let admin_token = create_token(&db, "admin", "admin");
    let boot_token = create_token(&db, "agent-host", "sessions:boot");
    let admin = server.client().with_token(&admin_token);
    let boot = server.client().with_token(&boot_token);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let blob = |tag: &str| format!("MTPROTO-AUTH-KEY-{tag}-").repeat(12).into_bytes();
    let hash = |n: u8| format!("{:032x}", 0xfe_4ce5_u128 * 7_919 + u128::from(n));
    let phone = |n: u8| format!("+1777666{n:04}");
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let upsert = |n: u8, fence: Option<String>| {
        let body = json!({"user_id": "u-lease", "session_id": "s-lease", "api_id": 7,
            "api_hash": hash(n), "phone": phone(n), "session_data": b64(&blob(&n.to_string()))});

        let headers: Vec<(&str, String)> = fence.map(|f| ("lease-fence", f)).into_iter().collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = admin.send(
            "POST",
            "/api/v1/sessions",
            Some(("application/json", body.to_string().as_bytes())),
            &headers,
        );
        let code = if r.body.is_empty() {
            serde_json::Value::Null
        } else {
            r.json()["code"].clone()
        };
        (r.status, code)
    };
    let put = |api: &common::server::Http, data: &[u8], fence: Option<&str>| {
        let headers: Vec<(&str, &str)> = fence.map(|f| ("lease-fence", f)).into_iter().collect();
        api.send(
            "PUT",
            "/api/v1/sessions/s-lease/data",
            Some(("application/octet-stream", data)),
            &headers,
        )
        .status
    };

    assert_eq!(upsert(0, None).0, 201);
    let (status, a) = take(&boot, "s-lease", "host-a", Some(30));
    assert_eq!(status, 200, "{a}");
    let fa = a["fence"].as_i64().unwrap().to_string();
    assert_eq!(upsert(1, None), (409, json!("lease_required")));
    assert_eq!(upsert(2, Some(fa.clone())).0, 200);
    let renewed = boot.post_json(
        "/api/v1/leases/renew",
        &json!({"holder": "host-a", "ttl_seconds": 30, "fences": {"s-lease": a["fence"]}}),
    );
    assert_eq!(renewed.status, 200);
    assert_eq!(
        boot.post_json("/api/v1/leases/holders", &json!({"holder": "host-a"}))
            .status,
        200
    );
    let read = boot.get("/api/v1/users/u-lease/session");
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["api_hash"], hash(2));
    assert_eq!(boot.get("/api/v1/sessions?is_active=true").status, 200);
    // A sessions:boot token may not write the blob, fence or not.
    let boot_blob = blob("boot-token-write");
    secrets.push(boot_blob.clone());
    assert_eq!(put(&boot, &boot_blob, Some(&fa)), 403);

    // host-a's lease lapses, host-b takes over: host-a's late writes fail.
    expire(&db, "s-lease").await;
    let (_, b) = take(&boot, "s-lease", "host-b", Some(30));
    let fb = b["fence"].as_i64().unwrap();
    assert_eq!(upsert(3, Some(fa.clone())), (409, json!("stale_lease")));
    let stale_blob = blob("stale-holder");
    secrets.push(stale_blob.clone());
    assert_eq!(put(&admin, &stale_blob, Some(&fa)), 409);
    let live_blob = blob("live-holder");
    secrets.push(live_blob.clone());
    assert_eq!(put(&admin, &live_blob, Some(&fb.to_string())), 200);
    assert_eq!(
        admin
            .send(
                "DELETE",
                "/api/v1/sessions/s-lease/data",
                None,
                &[("lease-fence", fb.to_string().as_str())]
            )
            .status,
        200
    );
    assert_eq!(release(&boot, "s-lease", "host-b", fb).0, 204);
    let (_, c) = take(&boot, "s-lease", "host-c", Some(30));
    assert!(c["fence"].as_i64().unwrap() > fb);
    assert_eq!(
        admin
            .post_json("/api/v1/sessions/s-lease/lease/break", &json!({}))
            .status,
        200
    );
    server.stop();

    let logs = server.logs();
    assert!(logs.contains("TRACE"), "TRACE logging was on");
    assert!(logs.contains("/lease"), "the lease requests were logged");
    let dump = std::process::Command::new("pg_dump")
        .arg("--no-owner")
        .arg(format!("--dbname={}", db.url))
        .output()
        .expect("pg_dump runs (install postgresql-client)");
    assert!(dump.status.success());
    let dump = String::from_utf8(dump.stdout).unwrap();
    for row in [
        "lease_taken_over",
        "lease_released",
        "lease_broken",
        "host-a",
    ] {
        assert!(dump.contains(row), "the dump holds the lease audit ({row})");
    }
    for n in 0..4 {
        secrets.extend([
            hash(n).into_bytes(),
            phone(n).into_bytes(),
            blob(&n.to_string()),
        ]);
    }
    secrets.extend([
        admin_token.into_bytes(),
        boot_token.into_bytes(),
        key.base64().as_bytes().to_vec(),
        // The raw key: its hex and base64 forms are searched too.
        base64::engine::general_purpose::STANDARD
            .decode(key.base64())
            .unwrap(),
    ]);
    for secret in &secrets {
        for form in forms(secret) {
            assert!(!dump.contains(&form), "a secret is in the database dump");
            assert!(!logs.contains(&form), "a secret is in the logs");
        }
    }
}

/// Ambiguous (a compile error) exactly when `T` implements the bound: the
/// `assert_not_impl` technique of the `static_assertions` crate.
macro_rules! assert_no_impl {
    ($t:ty: $bound:path) => {{
        trait Ambiguous<A> {
            fn check() {}
        }
        impl<T: ?Sized> Ambiguous<()> for T {}
        impl<T: ?Sized + $bound> Ambiguous<u8> for T {}
        <$t as Ambiguous<_>>::check();
    }};
}

/// docs/SECURITY.md: the key types (and an opened `Plaintext`) have no
/// `Debug` and no `Clone`, so no `{:?}` or stray copy can print or spread
/// key bytes or secrets. This test does not compile once one of them gains
/// either.
#[test]
fn key_types_have_no_debug_and_no_clone() {
    use vibee_sessions::crypto::{DataKey, KeyRing, MasterKey, MasterKeys, Plaintext};
    assert_no_impl!(MasterKey: std::fmt::Debug);
    assert_no_impl!(MasterKey: Clone);
    assert_no_impl!(MasterKeys: std::fmt::Debug);
    assert_no_impl!(MasterKeys: Clone);
    assert_no_impl!(DataKey: std::fmt::Debug);
    assert_no_impl!(DataKey: Clone);
    assert_no_impl!(KeyRing: std::fmt::Debug);
    assert_no_impl!(KeyRing: Clone);
    // An opened value: no `{:?}` prints it, no copy escapes its wipe.
    assert_no_impl!(Plaintext: std::fmt::Debug);
    assert_no_impl!(Plaintext: Clone);
}
