//! The handlers' statuses, scopes and JSON, in process: the router `serve`
//! builds, on a real PostgreSQL, called through `Router::oneshot`
//! (`common::in_process`). What needs a real process (signals, core dumps,
//! logs, TLS, restarts, start scripts) stays in tests/api.rs and the others.

mod common;

use base64::Engine;
use common::server::{HASH, Http, create_token, session, session_path};
use common::{TestDb, TestKey};
use serde_json::{Value, json};

/// A request body: content type and bytes.
type Body<'a> = Option<(&'a str, &'a [u8])>;
/// An error case: what, client, method, path, body, status, code.
type ErrorCase<'a> = (
    &'a str,
    Http,
    &'a str,
    &'a str,
    Option<(&'a str, Vec<u8>)>,
    u16,
    &'a str,
);

struct Env {
    db: TestDb,
    /// No token.
    anon: Http,
    admin: Http,
}

async fn start() -> Env {
    let db = TestDb::new().await;
    let anon = common::in_process(&db, &TestKey::generate()).await;
    let admin = anon.with_token(&create_token(&db, "admin", "admin"));
    Env { db, anon, admin }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_read_update_list_patch_and_delete() {
    let env = start().await;
    let api = &env.admin;

    let created = api.post_json("/api/v1/sessions", &session("144022504"));
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let meta = created.json();
    let session_id = meta["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/sessions/{session_id}").as_str())
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(meta["has_phone"], true);
    assert!(
        meta.get("api_hash").is_none(),
        "a write answers with metadata only"
    );

    let got = api.get(&format!("/api/v1/sessions/{session_id}"));
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(
        got.json(),
        api.get("/api/v1/users/144022504/session").json(),
        "the same session by either key"
    );
    let body = got.json();
    assert_eq!(body["api_hash"], HASH);
    assert_eq!(body["phone"], "+15551234567");
    assert_eq!(
        body["session_data"],
        base64::engine::general_purpose::STANDARD.encode(b"mtproto blob")
    );
    assert_eq!(body["target_chats"], json!([-100123, "@news"]));
    assert_eq!(got.header("cache-control"), Some("no-store"));

    let mut update = session("144022504");
    update["api_id"] = json!(999);
    update.as_object_mut().unwrap().remove("phone");
    let updated = api.post_json("/api/v1/sessions", &update);
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json()["version"], 2);
    assert_eq!(
        api.get("/api/v1/users/144022504/session").json()["phone"],
        "+15551234567",
        "phone kept"
    );

    let patched = api.patch_json(
        &format!("/api/v1/sessions/{session_id}"),
        &json!({"is_authorized": true, "username": null, "last_seen_at": "2026-11-29T10:00:00Z"}),
    );
    assert_eq!(
        patched.status,
        200,
        "{}",
        String::from_utf8_lossy(&patched.body)
    );
    let p = patched.json();
    assert_eq!(p["is_authorized"], true);
    assert_eq!(p["username"], Value::Null);
    assert_eq!(p["last_seen_at"], "2026-11-29T10:00:00Z");

    let list = api.get("/api/v1/sessions");
    assert_eq!(list.status, 200);
    let l = list.json();
    assert_eq!(l["sessions"].as_array().unwrap().len(), 1);
    assert!(
        l["sessions"][0].get("api_hash").is_none(),
        "the list holds no secret"
    );
    assert!(!String::from_utf8_lossy(&list.body).contains(HASH));
    assert_eq!(
        api.get("/api/v1/sessions?is_authorized=false").json()["sessions"],
        json!([])
    );

    let activity = api.get("/api/v1/users/144022504/activity").json();
    assert_eq!(
        activity,
        api.get(&format!("/api/v1/sessions/{session_id}/activity"))
            .json(),
        "one session, one trail"
    );
    let kinds: Vec<_> = activity["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activity_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds[..2],
        ["session_updated".to_owned(), "credentials_read".to_owned()]
    );
    assert!(
        activity["activity"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["actor"] == "admin")
    );

    assert_eq!(
        api.delete(&format!("/api/v1/sessions/{session_id}")).status,
        204
    );
    assert_eq!(
        api.delete(&format!("/api/v1/sessions/{session_id}")).status,
        204,
        "idempotent"
    );
    assert_eq!(api.get("/api/v1/sessions").json()["sessions"], json!([]));
    assert_eq!(
        api.get("/api/v1/sessions?include_inactive=true").json()["sessions"][0]["is_active"],
        false
    );
    assert_eq!(
        api.delete(&format!("/api/v1/sessions/{session_id}?purge=true"))
            .status,
        204
    );
    assert_eq!(
        api.get(&format!("/api/v1/sessions/{session_id}")).status,
        404
    );
    assert_eq!(api.get("/api/v1/users/144022504/session").status, 404);
    assert_eq!(
        api.delete(&format!("/api/v1/sessions/{session_id}")).status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_blob_as_raw_bytes() {
    let env = start().await;
    let api = &env.admin;
    let mut s = session("bridge-user");
    s.as_object_mut().unwrap().remove("session_data");
    let sid = api.post_json("/api/v1/sessions", &s).json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/sessions/{sid}/data");
    let none = api.get(&path);
    assert_eq!(none.status, 404);
    assert_eq!(none.json()["code"], "no_session_data");
    let blob: Vec<u8> = (0..350u32).map(|i| (i * 7 % 256) as u8).collect();
    let put = api.send("PUT", &path, Some(("application/octet-stream", &blob)), &[]);
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    assert_eq!(put.json()["has_session_data"], true, "metadata comes back");
    assert_eq!(put.header("etag"), Some("\"2\""));
    let got = api.get(&path);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.header("etag"), Some("\"2\""));
    assert_eq!(got.body, blob);
    let wrong_type = api.send("PUT", &path, Some(("application/json", b"{}")), &[]);
    assert_eq!(wrong_type.status, 415);
    let empty = api.send("PUT", &path, Some(("application/octet-stream", b"")), &[]);
    assert_eq!(empty.status, 422);
    // Past the cap: 413 (sizes the server reads whole: past the request
    // body limit it answers before the client is done sending).
    for too_big in [1024 * 1024 + 1, 1024 * 1024 + 64 * 1024] {
        let r = api.send(
            "PUT",
            &path,
            Some(("application/octet-stream", &vec![0u8; too_big])),
            &[],
        );
        assert_eq!(r.status, 413, "{too_big} bytes");
        assert_eq!(r.json()["code"], "payload_too_large");
    }
    // A real Telethon SQLite session with ~800 cached entities is ~69 KiB,
    // and the cap is 1 MiB exactly.
    for size in [69 * 1024, 1024 * 1024] {
        let big: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let r = api.send("PUT", &path, Some(("application/octet-stream", &big)), &[]);
        assert_eq!(
            r.status,
            200,
            "{size} bytes: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(api.get(&path).body, big);
    }
    // Conditional writes: If-Match with the current ETag writes, a stale one is 412.
    let current = api.get(&path).header("etag").unwrap().to_owned();
    let r = api.send(
        "PUT",
        &path,
        Some(("application/octet-stream", b"v2")),
        &[("if-match", &current)],
    );
    assert_eq!(r.status, 200);
    let r = api.send(
        "PUT",
        &path,
        Some(("application/octet-stream", b"v3")),
        &[("if-match", &current)],
    );
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["code"], "precondition_failed");
    assert_eq!(
        api.get(&path).body,
        b"v2",
        "the stale write changed nothing"
    );
    let r = api.send("DELETE", &path, None, &[("if-match", "\"1\"")]);
    assert_eq!(r.status, 412);
    let r = api.send(
        "PUT",
        &path,
        Some(("application/octet-stream", b"x")),
        &[("if-match", "garbage")],
    );
    assert_eq!(r.status, 400);
    // DELETE clears it (a bridge logged out), audited; again is fine.
    let cleared = api.delete(&path);
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.json()["has_session_data"], false);
    assert_eq!(api.get(&path).json()["code"], "no_session_data");
    assert_eq!(api.delete(&path).status, 200, "idempotent");
    let trail = api.get("/api/v1/users/bridge-user/activity").json();
    let deleted: Vec<_> = trail["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["activity_type"] == "session_data_deleted")
        .map(|a| a["details"]["had_data"].clone())
        .collect();
    assert_eq!(deleted, [json!(false), json!(true)]);
    assert_eq!(api.get("/api/v1/sessions/nobody-has-this/data").status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_status_is_json_and_names_what_is_wrong() {
    let env = start().await;
    let api = &env.admin;
    assert_eq!(api.post_json("/api/v1/sessions", &session("a")).status, 201);
    let a_sid = api.get("/api/v1/users/a").json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cases: Vec<ErrorCase> = vec![
        (
            "malformed JSON",
            api.clone(),
            "POST",
            "/api/v1/sessions",
            Some(("application/json", b"{\"user_id\": ".to_vec())),
            400,
            "malformed_request",
        ),
        (
            "trailing garbage",
            api.clone(),
            "POST",
            "/api/v1/sessions",
            Some(("application/json", b"{} x".to_vec())),
            400,
            "malformed_request",
        ),
        (
            "no token",
            env.anon.clone(),
            "GET",
            "/api/v1/sessions",
            None,
            401,
            "unauthorized",
        ),
        (
            "bad token",
            env.anon.clone().with_token("vbs_not-a-real-token"),
            "GET",
            "/api/v1/sessions",
            None,
            401,
            "unauthorized",
        ),
        (
            "unknown session",
            api.clone(),
            "GET",
            "/api/v1/sessions/nobody",
            None,
            404,
            "not_found",
        ),
        (
            "unknown route",
            api.clone(),
            "GET",
            "/api/v1/nothing-here",
            None,
            404,
            "not_found",
        ),
        (
            "wrong method",
            api.clone(),
            "PUT",
            "/api/v1/sessions",
            None,
            405,
            "method_not_allowed",
        ),
        (
            "session_id taken",
            api.clone(),
            "POST",
            "/api/v1/sessions",
            Some((
                "application/json",
                json!({"user_id": "b", "api_id": 1, "api_hash": HASH, "session_id": a_sid})
                    .to_string()
                    .into_bytes(),
            )),
            409,
            "conflict",
        ),
        (
            "too large",
            api.clone(),
            "POST",
            "/api/v1/sessions",
            Some(("application/json", vec![b' '; 1_470_000])),
            413,
            "payload_too_large",
        ),
        (
            "form body",
            api.clone(),
            "POST",
            "/api/v1/sessions",
            Some(("application/x-www-form-urlencoded", b"user_id=a".to_vec())),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            api.clone(),
            "PATCH",
            "/api/v1/sessions/a",
            Some(("", b"{}".to_vec())),
            415,
            "unsupported_media_type",
        ),
        (
            "bad limit",
            api.clone(),
            "GET",
            "/api/v1/sessions?limit=5000",
            None,
            422,
            "invalid_field",
        ),
        (
            "bad query",
            api.clone(),
            "GET",
            "/api/v1/sessions?limit=abc",
            None,
            400,
            "invalid_query",
        ),
        (
            "path traversal",
            api.clone(),
            "GET",
            "/api/v1/sessions/..%2Fetc",
            None,
            422,
            "invalid_field",
        ),
        (
            "NUL in path",
            api.clone(),
            "GET",
            "/api/v1/sessions/a%00b",
            None,
            422,
            "invalid_field",
        ),
    ];
    for (what, client, method, path, body, status, code) in cases {
        let body_ref = body.as_ref().map(|(ct, b)| (*ct, b.as_slice()));
        let r = client.send(method, path, body_ref, &[]);
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["code"], code, "{what}: {j}");
        assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}");
    }
    assert_eq!(
        env.anon
            .clone()
            .get("/api/v1/sessions")
            .header("www-authenticate"),
        Some("Bearer")
    );

    // 422 names the field, and never echoes the value sent.
    let invalid: Vec<(Value, &str)> = vec![
        (
            json!({"user_id": "x", "api_id": 1, "api_hash": "secret-but-short"}),
            "api_hash",
        ),
        (
            json!({"user_id": "x", "api_id": "12", "api_hash": HASH}),
            "api_id",
        ),
        (
            json!({"user_id": "x", "api_id": 0, "api_hash": HASH}),
            "api_id",
        ),
        (
            json!({"user_id": "x", "api_id": 1, "api_hash": HASH, "phone": "555-SECRET"}),
            "phone",
        ),
        (
            json!({"user_id": "x", "api_id": 1, "api_hash": HASH, "session_data": "***not base64***"}),
            "session_data",
        ),
        (
            json!({"user_id": "x", "api_id": 1, "api_hash": HASH, "target_chats": {"a": 1}}),
            "target_chats",
        ),
        (json!({"user_id": "x", "api_id": 1}), "api_hash"),
        (
            json!({"user_id": "x", "api_id": 1, "api_hash": HASH, "bogus": true}),
            "body",
        ),
        (
            json!({"user_id": "x y", "api_id": 1, "api_hash": HASH}),
            "user_id",
        ),
        (
            json!({"user_id": "x", "api_id": 99999999999u64, "api_hash": HASH}),
            "api_id",
        ),
    ];
    for (body, field) in invalid {
        let r = api.post_json("/api/v1/sessions", &body);
        assert_eq!(
            r.status,
            422,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["field"], field, "{body}: {j}");
        let text = String::from_utf8_lossy(&r.body);
        for secret in ["secret-but-short", "555-SECRET", "***not base64***"] {
            assert!(!text.contains(secret), "the error echoes a value: {text}");
        }
    }
    let a_path = session_path(api, "a");
    let r = api.patch_json(&a_path, &json!({"api_hash": HASH}));
    assert_eq!(r.status, 422, "secrets are not patchable");
    let r = api.patch_json(&a_path, &json!({}));
    assert_eq!(r.status, 422);
}

/// Each route, with a token of each scope: allowed exactly where the scope says.
#[tokio::test(flavor = "multi_thread")]
async fn scope_matrix() {
    let env = start().await;
    assert_eq!(
        env.admin
            .post_json("/api/v1/sessions", &session("m"))
            .status,
        201
    );
    let sid = env.admin.get("/api/v1/users/m").json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scopes = [
        "sessions:read",
        "sessions:write",
        "sessions:list",
        "sessions:boot",
        "admin",
    ];
    let clients: Vec<(&str, Http)> = scopes
        .iter()
        .map(|s| {
            let name = format!("scope-{}", s.replace(':', "-"));
            (*s, env.anon.with_token(&create_token(&env.db, &name, s)))
        })
        .collect();
    let blob_path = format!("/api/v1/sessions/{sid}/data");
    let session_path = format!("/api/v1/sessions/{sid}");
    let activity_path = format!("/api/v1/sessions/{sid}/activity");
    let reactivate_path = format!("/api/v1/sessions/{sid}/reactivate");
    let lease_path = format!("/api/v1/sessions/{sid}/lease");
    let release_path = format!("/api/v1/sessions/{sid}/lease?holder=matrix&fence=0");
    let break_path = format!("/api/v1/sessions/{sid}/lease/break");
    let body = session("m").to_string();
    let routes: Vec<(&str, &str, Body, &str)> = vec![
        (
            "POST",
            "/api/v1/sessions",
            Some(("application/json", body.as_bytes())),
            "sessions:write",
        ),
        // Alternatives, as the document lists them: the first is `required_scope`.
        (
            "GET",
            "/api/v1/sessions",
            None,
            "sessions:list,sessions:boot",
        ),
        ("GET", &session_path, None, "sessions:read"),
        (
            "PATCH",
            &session_path,
            Some(("application/json", b"{\"auto_reply_enabled\":true}")),
            "sessions:write",
        ),
        ("GET", &activity_path, None, "sessions:list"),
        ("GET", "/api/v1/users/m", None, "sessions:list"),
        (
            "GET",
            "/api/v1/users/m/session",
            None,
            "sessions:read,sessions:boot",
        ),
        ("GET", "/api/v1/users/m/activity", None, "sessions:list"),
        (
            "PUT",
            &blob_path,
            Some(("application/octet-stream", b"blob")),
            "sessions:write",
        ),
        ("GET", &blob_path, None, "sessions:read"),
        ("DELETE", &blob_path, None, "sessions:write"),
        (
            "POST",
            &lease_path,
            Some(("application/json", b"{\"holder\":\"matrix\"}")),
            "sessions:read,sessions:boot",
        ),
        ("GET", &lease_path, None, "sessions:read,sessions:boot"),
        // Released with a fence that is not the lease's: 409, after the scope check.
        ("DELETE", &release_path, None, "sessions:read,sessions:boot"),
        ("POST", &break_path, None, "admin"),
        (
            "POST",
            "/api/v1/leases/take",
            Some((
                "application/json",
                b"{\"holder\":\"matrix\",\"session_ids\":[]}",
            )),
            "sessions:read,sessions:boot",
        ),
        (
            "POST",
            "/api/v1/leases/release",
            Some(("application/json", b"{\"holder\":\"matrix\",\"fences\":{}}")),
            "sessions:read,sessions:boot",
        ),
        (
            "POST",
            "/api/v1/leases/renew",
            Some(("application/json", b"{\"holder\":\"matrix\",\"fences\":{}}")),
            "sessions:read,sessions:boot",
        ),
        (
            "POST",
            "/api/v1/leases/holders",
            Some(("application/json", b"{\"holder\":\"matrix\"}")),
            "sessions:read,sessions:boot",
        ),
        (
            "DELETE",
            "/api/v1/leases/holders/matrix",
            None,
            "sessions:read,sessions:boot",
        ),
        ("GET", "/api/v1/keys", None, "admin"),
        ("GET", "/api/v1/keys/master", None, "admin"),
        ("GET", "/api/v1/stats", None, "sessions:list"),
        ("GET", "/api/v1/activity/hourly", None, "sessions:list"),
        ("GET", "/api/v1/leases/holders", None, "sessions:list"),
        // Any valid token may ask what it is.
        ("GET", "/api/v1/token", None, ""),
        ("DELETE", &session_path, None, "sessions:write"),
        ("POST", &reactivate_path, None, "sessions:write"),
    ];
    // Every authenticated operation of the OpenAPI document is in the matrix,
    // with the scope the document names (the matrix must cover
    // every route, and the document must not lie about scopes).
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string("docs/openapi.json").unwrap()).unwrap();
    let template = |path: &str| {
        path.split('?')
            .next()
            .unwrap()
            .replace(&sid, "{session_id}")
            .replace("/users/m", "/users/{user_id}")
            .replace("/holders/matrix", "/holders/{holder}")
    };
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(security) = op["security"].as_array() else {
                continue;
            };
            let scopes: Vec<&str> = security
                .iter()
                .flat_map(|s| s["bearer"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            assert_ne!(
                path, "/api/v1/openapi.json",
                "the OpenAPI document needs no token"
            );
            documented.push((method.to_uppercase(), path.clone(), scopes.join(",")));
        }
    }
    let mut covered: Vec<(String, String, String)> = routes
        .iter()
        .map(|(m, p, _, s)| (m.to_string(), template(p), s.to_string()))
        .collect();
    documented.sort();
    covered.sort();
    assert_eq!(
        covered, documented,
        "the scope matrix and the documented routes differ"
    );
    for (method, path, body, needed) in &routes {
        for (scope, client) in &clients {
            let r = client.send(method, path, *body, &[]);
            let allowed =
                needed.is_empty() || needed.split(',').any(|n| n == *scope) || *scope == "admin";
            if allowed {
                let stale = path.contains("/lease?") && r.status == 409;
                assert!(
                    r.status < 300 || stale,
                    "{method} {path} with {scope}: {}",
                    r.status
                );
            } else {
                assert_eq!(r.status, 403, "{method} {path} with {scope}");
                assert_eq!(
                    r.json()["required_scope"],
                    needed.split(',').next().unwrap()
                );
            }
        }
    }
    // The OpenAPI document holds no data: any token, or none, reads it.
    for (scope, client) in &clients {
        assert_eq!(client.get("/api/v1/openapi.json").status, 200, "{scope}");
    }
    assert_eq!(env.anon.clone().get("/api/v1/openapi.json").status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_across_pages() {
    let env = start().await;
    for i in 0..23 {
        assert_eq!(
            env.admin
                .post_json("/api/v1/sessions", &session(&format!("p{i:02}")))
                .status,
            201
        );
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/sessions?limit=10".to_owned();
    loop {
        let page = env.admin.get(&path).json();
        seen.extend(
            page["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["user_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/sessions?limit=10&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<_> = (0..23).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, expected);
}

/// RFC 9110 conditional writes on the session itself: `If-None-Match: *` on
/// POST creates only, `If-Match` on POST and PATCH writes only at that
/// version; a failed precondition is 412 and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn conditional_post_and_patch() {
    let env = start().await;
    let api = &env.admin;
    let body = session("cond-user");
    let json = body.to_string();
    let post = |headers: &[(&str, &str)]| {
        api.send(
            "POST",
            "/api/v1/sessions",
            Some(("application/json", json.as_bytes())),
            headers,
        )
    };

    // If-Match on a user_id with no session: nothing to update.
    let r = post(&[("if-match", "\"1\"")]);
    assert_eq!(r.status, 412, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "precondition_failed");
    assert_eq!(api.get("/api/v1/users/cond-user").status, 404);

    // Create only: first 201, then 412 with the session unchanged.
    let r = post(&[("if-none-match", "*")]);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("etag"), Some("\"1\""));
    let r = post(&[("if-none-match", "*")]);
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["code"], "precondition_failed");
    assert_eq!(api.get("/api/v1/users/cond-user").json()["version"], 1);

    // Malformed preconditions are 400 and write nothing.
    for headers in [
        vec![("if-none-match", "\"1\"")],
        vec![("if-none-match", "*"), ("if-match", "\"1\"")],
    ] {
        let r = post(&headers);
        assert_eq!(r.status, 400, "{headers:?}");
    }

    // Update only at the version named: "1" writes, then "1" again is stale.
    let r = post(&[("if-match", "\"1\"")]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(post(&[("if-match", "\"1\"")]).status, 412);

    // PATCH with If-Match: the current version writes, a stale one is 412.
    let path = session_path(api, "cond-user");
    let patch = |etag: &str, username: &str| {
        api.send(
            "PATCH",
            &path,
            Some((
                "application/json",
                json!({ "username": username }).to_string().as_bytes(),
            )),
            &[("if-match", etag)],
        )
    };
    let r = patch("\"2\"", "bob");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("etag"), Some("\"3\""));
    let r = patch("\"2\"", "mallory");
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["code"], "precondition_failed");
    let now = api.get("/api/v1/users/cond-user").json();
    assert_eq!(
        (now["username"].as_str(), now["version"].as_i64()),
        (Some("bob"), Some(3))
    );
}
