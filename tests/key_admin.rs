//! Three small holes closed: token changes are audited; a new
//! primary is never wrapped under another master key than the live keys; the
//! nonce budget counts every encryption an upsert makes, retries included.

mod common;

use std::time::Duration;

use common::server::{HASH, Server, create_token};
use common::{TestDb, TestKey, bin_at};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn token_create_and_revoke_are_audited_without_the_secret() {
    let db = TestDb::new().await;
    let secret = create_token(&db, "agent-host-7", "sessions:read");
    let out = bin_at(&db)
        .args(["token", "revoke", "agent-host-7"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = db
        .client()
        .await
        .query(
            "SELECT activity_type, actor, details::text FROM session_activity ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("token_created", "cli")
    );
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str()),
        ("token_revoked", "cli")
    );
    for (_, _, details) in &got {
        assert!(details.contains("agent-host-7"), "{details}");
        assert!(!details.contains(&secret), "the secret is in the audit row");
        assert!(
            !details.contains(&secret[4..20]),
            "part of the secret is in the audit row"
        );
    }
    assert!(got[0].2.contains("sessions:read"), "{}", got[0].2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_primary_is_never_wrapped_under_another_master_key_than_the_live_keys() {
    let db = TestDb::new().await;
    let old = TestKey::generate();
    let new = TestKey::generate();
    // Keys under the old master key (the first, and a rotation to a second).
    let out = bin_at(&db)
        .args(["rotate", "--grace-ms", "0"])
        .env("MASTER_KEY", old.base64())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Step 2 of a master key rollout (new key, old as previous), but a
    // `rotate` before `rotate-master`: it would wrap the new primary under
    // the new master key while every other key is under the old one.
    let out = bin_at(&db)
        .args(["rotate", "--grace-ms", "0"])
        .env("MASTER_KEY", new.base64())
        .env("MASTER_KEY_PREVIOUS", old.base64())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rotate was accepted: {stderr}");
    assert!(stderr.contains("rotate-master"), "{stderr}");
    let kek_ids: i64 = db
        .client()
        .await
        .query_one("SELECT count(DISTINCT kek_id) FROM encryption_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kek_ids, 1, "keys under two master keys");
    let keys: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM encryption_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 2, "a key was created");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upsert_that_retries_reserves_nonces_for_every_attempt() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start(&db, &key);
    let api = server
        .client()
        .with_token(&create_token(&db, "admin", "admin"));
    // Two creates of one user_id, forced to race: the audit table is held,
    // so the first waits (its row inserted, uncommitted) while the second's
    // insert waits on the first's; released, the second retries as an update.
    let locker = db.client().await;
    for round in 0..3 {
        let user = format!("race-{round}");
        locker
            .batch_execute("BEGIN; LOCK TABLE session_activity IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (api, user) = (api.clone(), user.clone());
            threads.push(std::thread::spawn(move || {
                api.post_json(
                    "/api/v1/sessions",
                    &json!({ "user_id": user, "api_id": 1, "api_hash": HASH,
                             "phone": "+15551234567", "session_data": "YmxvYg==" }),
                )
                .status
            }));
            std::thread::sleep(Duration::from_millis(300));
        }
        locker.batch_execute("ROLLBACK").await.unwrap();
        let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 201]);
    }
    let metrics = String::from_utf8(api.get("/metrics").body).unwrap();
    let made = metric(&metrics, "vibee_encryptions_total");
    let reserved = metric(&metrics, "vibee_encryptions_reserved_total");
    // 3 rounds: a create (3 fields), a lost insert (3) and its update (3).
    assert_eq!(made, 27.0, "{metrics}");
    assert!(
        reserved >= made,
        "encryptions made ({made}) beyond those counted against the key ({reserved})"
    );
}
