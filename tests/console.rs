//! What the operator console needs from the server, in process (the router
//! `serve` builds, `common::in_process`) on a real PostgreSQL: its assets with their CSP, the list route's
//! search and filters, and the small metadata routes (token, hourly activity,
//! holders, master key). The console in a browser: scripts/console-test.sh.

mod common;

use common::server::create_token;
use common::{TestDb, TestKey};
use serde_json::{Value, json};

fn session(user_id: &str, username: &str, authorized: bool) -> Value {
    json!({
        "user_id": user_id,
        "api_id": 12345,
        "api_hash": "0123456789abcdef0123456789abcdef",
        "username": username,
        "is_authorized": authorized,
    })
}

fn users(page: &Value) -> Vec<String> {
    page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn console_assets_have_a_strict_csp_and_the_api_headers() {
    let db = TestDb::new().await;
    let http = common::in_process(&db, &TestKey::generate()).await;
    let page = http.get("/console/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains(r#"<script type="module" src="app.js"></script>"#));
    let js = http.get("/console/app.js");
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(
        http.get("/console/app.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    let missing = http.get("/console/secret.txt");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "not_found");
    // The API keeps its own, stricter policy.
    assert_eq!(
        http.get("/healthz").header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_searches_and_filters_on_the_server() {
    let db = TestDb::new().await;
    let server = common::in_process(&db, &TestKey::generate()).await;
    let admin = server.with_token(&create_token(&db, "ops", "admin"));
    for (u, name, auth) in [
        ("acme-1", "alice", true),
        ("acme-2", "bob", false),
        ("globex", "Carol_X", true),
        ("initech", "dave", true),
    ] {
        assert_eq!(
            admin
                .post_json("/api/v1/sessions", &session(u, name, auth))
                .status,
            201
        );
    }
    let sid = |u: &str| {
        admin.get(&format!("/api/v1/users/{u}")).json()["session_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        admin
            .delete(&format!("/api/v1/sessions/{}", sid("initech")))
            .status,
        204
    );
    let lease = admin.post_json(
        &format!("/api/v1/sessions/{}/lease", sid("acme-2")),
        &json!({"holder": "agent-a", "ttl_seconds": 60}),
    );
    assert!(lease.status < 300, "{}", lease.status);

    let list = |q: &str| {
        let r = admin.get(&format!("/api/v1/sessions?{q}"));
        assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
        users(&r.json())
    };
    assert_eq!(list("q=ACME"), ["acme-1", "acme-2"]);
    assert_eq!(list("q=carol"), ["globex"], "username, case-insensitive");
    assert_eq!(
        list(&format!("q={}", &sid("globex")[4..12])),
        ["globex"],
        "session_id"
    );
    assert_eq!(list("q=l_x"), ["globex"], "_ matches itself");
    assert_eq!(
        list("q=a_e&include_inactive=true").len(),
        0,
        "_ is no wildcard (it would match dave)"
    );
    assert_eq!(list("q=%25").len(), 0, "% is no wildcard");
    assert_eq!(list("is_active=false"), ["initech"]);
    assert_eq!(list("is_active=true&include_inactive=true").len(), 3);
    assert_eq!(list("include_inactive=true").len(), 4);
    assert_eq!(list("held=true"), ["acme-2"]);
    assert_eq!(list("held=false"), ["acme-1", "globex"]);
    assert_eq!(list("held=false&is_authorized=true&q=acme"), ["acme-1"]);
    let page1 = admin.get("/api/v1/sessions?q=e&limit=1").json();
    assert_eq!(users(&page1), ["acme-1"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    assert_eq!(
        list(&format!("q=e&limit=2&cursor={cursor}")),
        ["acme-2", "globex"]
    );

    for bad in ["q=", "q=%00", &format!("q={}", "x".repeat(129))] {
        let r = admin.get(&format!("/api/v1/sessions?{bad}"));
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(r.json()["field"], "q", "{bad}");
    }
    assert_eq!(admin.get("/api/v1/sessions?held=maybe").status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_metadata_routes() {
    let db = TestDb::new().await;
    let server = common::in_process(&db, &TestKey::generate()).await;
    let admin = server.with_token(&create_token(&db, "ops-admin", "admin"));
    let lister = server.with_token(&create_token(&db, "ops-list", "sessions:list"));
    let agent = server.with_token(&create_token(&db, "agent", "sessions:read"));

    let me = lister.get("/api/v1/token").json();
    assert_eq!(me, json!({"name": "ops-list", "scopes": ["sessions:list"]}));
    assert_eq!(
        agent.get("/api/v1/token").json()["scopes"],
        json!(["sessions:read"])
    );
    assert_eq!(server.get("/api/v1/token").status, 401);
    assert_eq!(
        server.with_token("vbs_nope").get("/api/v1/token").status,
        401
    );

    for u in ["a", "b", "c"] {
        assert_eq!(
            admin
                .post_json("/api/v1/sessions", &session(u, u, true))
                .status,
            201
        );
    }
    let hours = lister.get("/api/v1/activity/hourly").json()["hours"].clone();
    let hours = hours.as_array().unwrap();
    assert_eq!(hours.len(), 24);
    let total: i64 = hours.iter().map(|h| h["events"].as_i64().unwrap()).sum();
    // Three tokens created (`token_created`) and three sessions created.
    assert_eq!(total, 6, "six audited events, in the current hour");
    // The newest bucket is the current hour (or the one before, when the
    // test runs across an hour's turn).
    let recent = hours[22]["events"].as_i64().unwrap() + hours[23]["events"].as_i64().unwrap();
    assert_eq!(recent, 6);

    assert_eq!(
        agent
            .post_json(
                "/api/v1/leases/holders",
                &json!({"holder": "boot-1", "ttl_seconds": 60})
            )
            .status,
        200
    );
    let sid = admin.get("/api/v1/users/a").json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = agent.post_json(
        &format!("/api/v1/sessions/{sid}/lease"),
        &json!({"holder": "boot-1", "ttl_seconds": 60}),
    );
    assert!(r.status < 300);
    let sid_b = admin.get("/api/v1/users/b").json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = agent.post_json(
        &format!("/api/v1/sessions/{sid_b}/lease"),
        &json!({"holder": "no-heartbeat", "ttl_seconds": 60}),
    );
    assert!(r.status < 300);
    let holders = lister.get("/api/v1/leases/holders").json()["holders"].clone();
    let holders = holders.as_array().unwrap();
    assert_eq!(holders.len(), 2, "{holders:?}");
    assert_eq!(holders[0]["holder"], "boot-1");
    assert_eq!(holders[0]["live"], true);
    assert_eq!(holders[0]["tenants"], 1);
    assert_eq!(holders[1]["holder"], "no-heartbeat");
    assert_eq!(holders[1]["seen_at"], Value::Null);
    assert_eq!(holders[1]["tenants"], 1);

    let master = admin.get("/api/v1/keys/master").json();
    assert_eq!(master["kind"], "key");
    assert_eq!(master["kek_id"], admin.get("/api/v1/keys").json()["kek_id"]);
    assert_eq!(lister.get("/api/v1/keys/master").status, 403);
}
