//! One URL, one tenant: every `/sessions/{session_id}` route acts on the
//! session that session_id names, whatever user_ids exist; deactivation
//! means no credentials, no blob and no writes until an audited
//! reactivation; a blob that fails its integrity check can be replaced.
//! In process (`common::in_process`: the router `serve` builds, called
//! through `Router::oneshot`) on a real PostgreSQL.

mod common;

use base64::Engine;
use common::server::{HASH, Http, create_token};
use common::{TestDb, TestKey};
use serde_json::{Value, json};

fn tenant(user_id: &str, session_id: &str) -> Value {
    json!({"user_id": user_id, "session_id": session_id, "api_id": 1, "api_hash": HASH})
}

/// The test's database, a client with no token, and one with an admin token.
async fn start() -> (TestDb, Http, Http) {
    let db = TestDb::new().await;
    let anon = common::in_process(&db, &TestKey::generate()).await;
    let admin = anon.with_token(&create_token(&db, "admin", "admin"));
    (db, anon, admin)
}

fn blob(api: &Http, path: &str, bytes: &[u8]) -> u16 {
    api.send("PUT", path, Some(("application/octet-stream", bytes)), &[])
        .status
}

/// The case: user acme with session acme-main, and user bob with
/// session "acme" (import-env without USER_ID makes such ids).
#[tokio::test(flavor = "multi_thread")]
async fn a_session_id_that_is_another_tenants_user_id_reaches_only_its_own_session() {
    let (_db, _anon, api) = start().await;
    assert_eq!(
        api.post_json("/api/v1/sessions", &tenant("acme", "acme-main"))
            .status,
        201
    );
    assert_eq!(
        api.post_json("/api/v1/sessions", &tenant("bob", "acme"))
            .status,
        201
    );

    // Every method on /sessions/acme is bob's session, and only bob's.
    let got = api.get("/api/v1/sessions/acme");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["user_id"], "bob");
    let patched = api.patch_json("/api/v1/sessions/acme", &json!({"username": "patched"}));
    assert_eq!(patched.json()["user_id"], "bob");
    assert_eq!(blob(&api, "/api/v1/sessions/acme/data", b"bob's key"), 200);
    assert_eq!(api.get("/api/v1/sessions/acme/data").body, b"bob's key");
    let trail = api.get("/api/v1/sessions/acme/activity").json();
    assert!(
        trail["activity"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["user_id"] == "bob"),
        "{trail}"
    );
    assert_eq!(api.delete("/api/v1/sessions/acme").status, 204);

    // acme is untouched by all of it.
    let acme = api.get("/api/v1/users/acme/session").json();
    assert_eq!(acme["session_id"], "acme-main");
    assert_eq!(acme["is_active"], true);
    assert_eq!(acme["username"], Value::Null);
    assert_eq!(acme["session_data"], Value::Null);
    assert_eq!(acme["version"], 1);
    let bob = api.get("/api/v1/users/bob").json();
    assert_eq!(bob["is_active"], false);
    assert_eq!(bob["username"], "patched");

    // The lookups: user_id -> session_id without a credentials read, and
    // the list filtered by user_id.
    let reads_before = count(&api, "acme", "credentials_read");
    let meta = api.get("/api/v1/users/acme");
    assert_eq!(meta.status, 200);
    assert_eq!(meta.json()["session_id"], "acme-main");
    assert!(meta.json().get("api_hash").is_none());
    assert_eq!(meta.header("etag"), Some("\"1\""));
    assert_eq!(
        count(&api, "acme", "credentials_read"),
        reads_before,
        "not audited as a read"
    );
    let page = api
        .get("/api/v1/sessions?user_id=acme&include_inactive=true")
        .json();
    let ids: Vec<_> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].clone())
        .collect();
    assert_eq!(ids, [json!("acme-main")]);
    assert_eq!(api.get("/api/v1/sessions?user_id=a%00b").status, 422);

    // A user_id where a session_id belongs is a 404 that says what changed.
    let old_style = api.get("/api/v1/sessions/acme-main-user");
    assert_eq!(old_style.status, 404);
    assert_eq!(
        api.post_json("/api/v1/sessions", &tenant("solo", "solo-sid"))
            .status,
        201
    );
    let old_style = api.get("/api/v1/sessions/solo");
    assert_eq!(old_style.status, 404);
    assert!(
        old_style.json()["error"]
            .as_str()
            .unwrap()
            .contains("/api/v1/users/{user_id}"),
        "{}",
        old_style.json()
    );
}

fn count(api: &Http, user_id: &str, kind: &str) -> usize {
    api.get(&format!("/api/v1/users/{user_id}/activity")).json()["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["activity_type"] == kind)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivated_session_serves_nothing_and_takes_no_write_until_reactivated() {
    let (_db, _anon, api) = start().await;
    let mut body = tenant("t", "t-sid");
    body["session_data"] = json!("AQIDBA==");
    assert_eq!(api.post_json("/api/v1/sessions", &body).status, 201);
    assert_eq!(api.delete("/api/v1/sessions/t-sid").status, 204);

    let refused = |r: common::server::Response, what: &str| {
        assert_eq!(
            r.status,
            409,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["code"], "session_inactive", "{what}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(!text.contains(HASH), "{what} leaks the api_hash");
    };
    refused(api.get("/api/v1/sessions/t-sid"), "GET credentials");
    refused(
        api.get("/api/v1/users/t/session"),
        "GET credentials by user_id",
    );
    refused(api.get("/api/v1/sessions/t-sid/data"), "GET blob");
    refused(
        api.send(
            "PUT",
            "/api/v1/sessions/t-sid/data",
            Some(("application/octet-stream", b"x")),
            &[],
        ),
        "PUT blob",
    );
    refused(api.delete("/api/v1/sessions/t-sid/data"), "DELETE blob");
    refused(
        api.patch_json("/api/v1/sessions/t-sid", &json!({"is_authorized": true})),
        "PATCH",
    );
    refused(api.post_json("/api/v1/sessions", &body), "POST upsert");
    // Metadata stays visible, and deactivating again or purging still works.
    assert_eq!(api.get("/api/v1/users/t").json()["is_active"], false);
    assert_eq!(api.delete("/api/v1/sessions/t-sid").status, 204);

    let back = api.send("POST", "/api/v1/sessions/t-sid/reactivate", None, &[]);
    assert_eq!(back.status, 200);
    assert_eq!(back.json()["is_active"], true);
    assert_eq!(count(&api, "t", "session_reactivated"), 1);
    assert_eq!(
        api.send("POST", "/api/v1/sessions/t-sid/reactivate", None, &[])
            .status,
        200
    );
    assert_eq!(
        count(&api, "t", "session_reactivated"),
        1,
        "idempotent, audited once"
    );
    assert_eq!(api.get("/api/v1/sessions/t-sid/data").body, [1, 2, 3, 4]);
    assert_eq!(api.get("/api/v1/sessions/t-sid").json()["api_hash"], HASH);
    assert_eq!(
        api.send("POST", "/api/v1/sessions/nope/reactivate", None, &[])
            .status,
        404
    );
}

/// A blob whose ciphertext fails its check: GET is 500 `integrity_error`,
/// and PUT (which replaces it without decrypting it) repairs the row.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_that_fails_its_integrity_check_can_be_replaced() {
    let (db, _anon, api) = start().await;
    let mut body = tenant("c", "c-sid");
    body["session_data"] = json!("AQIDBA==");
    assert_eq!(api.post_json("/api/v1/sessions", &body).status, 201);
    db.client()
        .await
        .batch_execute(
            "UPDATE user_sessions SET session_data_encrypted = set_byte(\
             session_data_encrypted, 29, get_byte(session_data_encrypted, 29) # 1)",
        )
        .await
        .unwrap();
    let broken = api.get("/api/v1/sessions/c-sid/data");
    assert_eq!(broken.status, 500);
    assert_eq!(broken.json()["code"], "integrity_error");
    assert_eq!(blob(&api, "/api/v1/sessions/c-sid/data", b"fresh"), 200);
    assert_eq!(api.get("/api/v1/sessions/c-sid/data").body, b"fresh");

    // The same through POST, replacing every sealed value.
    db.client()
        .await
        .batch_execute(
            "UPDATE user_sessions SET session_data_encrypted = set_byte(\
             session_data_encrypted, 29, get_byte(session_data_encrypted, 29) # 1)",
        )
        .await
        .unwrap();
    assert_eq!(api.get("/api/v1/users/c/session").status, 500);
    let mut all = body.clone();
    all["phone"] = json!("+15551234567");
    all["session_data"] = json!("BQY=");
    let r = api.post_json("/api/v1/sessions", &all);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(api.get("/api/v1/sessions/c-sid/data").body, [5, 6]);
}

/// Pyrogram's session strings are URL-safe base64 without padding; Telethon
/// and most tools write standard padded base64. Both are taken.
#[tokio::test(flavor = "multi_thread")]
async fn session_data_in_every_base64_form() {
    let (_db, _anon, api) = start().await;
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    let forms = [
        base64::engine::general_purpose::STANDARD.encode(&bytes),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
        base64::engine::general_purpose::URL_SAFE.encode(&bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
    ];
    for (i, form) in forms.iter().enumerate() {
        let mut body = tenant(&format!("b{i}"), &format!("b{i}-sid"));
        body["session_data"] = json!(form);
        let r = api.post_json("/api/v1/sessions", &body);
        assert_eq!(
            r.status,
            201,
            "{form}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            api.get(&format!("/api/v1/sessions/b{i}-sid/data")).body,
            bytes
        );
    }
    let mut bad = tenant("bad", "bad-sid");
    bad["session_data"] = json!("+/-_AQ");
    let r = api.post_json("/api/v1/sessions", &bad);
    assert_eq!(r.status, 422);
    let message = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("URL-safe") && message.contains("padding"),
        "{message}"
    );
}
