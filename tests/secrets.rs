//! Secrets never leave in the clear: a full `pg_dump` of a database holding
//! sessions, and every log line written at TRACE level while they were stored,
//! read, updated, rejected and tampered with, contain none of the plaintexts.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::{TestDb, TestKey, open_vault};
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

    let db = TestDb::new().await;
    let vault = open_vault(&db, &TestKey::generate()).await;
    let mut conn = db.conn().await;
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
