//! A sealed value is bound to the keys it is looked up by
//! (`user_id`, `session_id`), not just to its row's uuid. Someone with SQL
//! write access who swaps two rows' lookup keys gets an integrity error,
//! never the victim's credentials. And a ciphertext whose header names
//! another key than its row's `data_key_id` is refused. The swap test runs the real `serve` (its logs and metrics are read); the
//! header test runs in process (`common::in_process`). Both on a real PostgreSQL.

mod common;

use base64::Engine;
use common::server::{Http, Server, create_token};
use common::{TestDb, TestKey};
use serde_json::json;

const VICTIM_HASH: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ATTACKER_HASH: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn create(api: &Http, user: &str, session: &str, hash: &str, blob: &[u8]) {
    let r = api.post_json(
        "/api/v1/sessions",
        &json!({ "user_id": user, "session_id": session, "api_id": 1, "api_hash": hash,
                 "phone": "+15551234567", "session_data": b64(blob) }),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

fn assert_integrity_error(r: &common::server::Response, secret: &[u8], what: &str) {
    assert_eq!(
        r.status,
        500,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["code"], "integrity_error", "{what}");
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        !body.contains(&*String::from_utf8_lossy(secret)) && !body.contains(&b64(secret)),
        "{what}: the answer holds the victim's secret"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swapped_user_ids_or_session_ids_give_an_integrity_error_not_the_victims_secrets() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    // A real process: the test reads its log lines and its /metrics.
    let server = Server::start(&db, &key);
    let api = server
        .client()
        .with_token(&create_token(&db, "admin", "admin"));
    create(&api, "victim", "victim-sess", VICTIM_HASH, b"victim blob");
    create(
        &api,
        "attacker",
        "attacker-sess",
        ATTACKER_HASH,
        b"attacker blob",
    );
    assert_eq!(
        api.get("/api/v1/users/attacker/session").json()["api_hash"],
        ATTACKER_HASH
    );

    let sql = db.client().await;
    // Swap the user_ids: the row the attacker now looks up holds the victim's ciphertexts.
    sql.batch_execute(
        "BEGIN; \
         UPDATE user_sessions SET user_id = 'tmp' WHERE user_id = 'victim'; \
         UPDATE user_sessions SET user_id = 'victim' WHERE user_id = 'attacker'; \
         UPDATE user_sessions SET user_id = 'attacker' WHERE user_id = 'tmp'; \
         COMMIT",
    )
    .await
    .unwrap();
    let r = api.get("/api/v1/users/attacker/session");
    assert_integrity_error(&r, VICTIM_HASH.as_bytes(), "GET by a swapped user_id");
    // Swap back, then swap the session_ids: the blob is looked up by session_id.
    sql.batch_execute(
        "BEGIN; \
         UPDATE user_sessions SET user_id = 'tmp' WHERE user_id = 'victim'; \
         UPDATE user_sessions SET user_id = 'victim' WHERE user_id = 'attacker'; \
         UPDATE user_sessions SET user_id = 'attacker' WHERE user_id = 'tmp'; \
         UPDATE user_sessions SET session_id = 'tmp' WHERE session_id = 'victim-sess'; \
         UPDATE user_sessions SET session_id = 'victim-sess' WHERE session_id = 'attacker-sess'; \
         UPDATE user_sessions SET session_id = 'attacker-sess' WHERE session_id = 'tmp'; \
         COMMIT",
    )
    .await
    .unwrap();
    let r = api.get("/api/v1/sessions/attacker-sess/data");
    assert_integrity_error(&r, b"victim blob", "GET blob by a swapped session_id");
    let r = api.get("/api/v1/users/attacker/session");
    assert_integrity_error(&r, VICTIM_HASH.as_bytes(), "GET with a swapped session_id");

    // docs/SECURITY.md: logged with its place (never the value), counted.
    let logs = server.logs();
    assert!(
        logs.contains("integrity error") && logs.contains("session_data_encrypted"),
        "the failure is logged with its column: {logs}"
    );
    let metrics = String::from_utf8(server.client().get("/metrics").body).unwrap();
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vibee_integrity_failures_total "))
        .expect("vibee_integrity_failures_total is exported")
        .trim()
        .parse()
        .unwrap();
    assert!(failures >= 3.0, "three failed reads counted: {failures}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_key_id_other_than_the_rows_data_key_id_is_an_integrity_error() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let api = common::in_process(&db, &key)
        .await
        .with_token(&create_token(&db, "admin", "admin"));
    create(&api, "u1", "s1", VICTIM_HASH, b"blob");
    // A new primary (key 2) while the row's ciphertexts stay under key 1
    // (active); then the row is relabelled as if it were on key 2. Rotation
    // would trust that label, never move the row, and retire key 1 under it.
    let mut conn = db.conn().await;
    let promotion = vibee_sessions::db::keys::promote_new_primary(
        &mut conn,
        &vibee_sessions::kek::Kek::Local(key.key()),
        &vibee_sessions::db::activity::AuditContext::cli(),
    )
    .await
    .unwrap();
    let sql = db.client().await;
    sql.execute(
        "UPDATE user_sessions SET data_key_id = $1",
        &[&(promotion.new_primary.0 as i32)],
    )
    .await
    .unwrap();
    let r = api.get("/api/v1/users/u1/session");
    assert_integrity_error(
        &r,
        VICTIM_HASH.as_bytes(),
        "row data_key_id != header key id",
    );
}
