//! Leases over REST, against a real `serve` and PostgreSQL: every status,
//! the audit trail, and fences that only grow (across purge, re-create and
//! a server restart).

mod common;

use common::leases::{create, expire, release, start, take, time};
use common::server::{Server, create_token};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn take_renew_conflict_release_and_get() {
    let env = start().await;
    create(&env.admin, "u1", "s1");

    let (status, a) = take(&env.reader, "s1", "host-a", Some(30));
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["session_id"], "s1");
    assert_eq!(a["holder"], "host-a");
    let fence = a["fence"].as_i64().unwrap();
    assert!(fence > 0);

    // The same holder renews: same fence, later expiry.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (status, renewed) = take(&env.reader, "s1", "host-a", Some(30));
    assert_eq!(status, 200);
    assert_eq!(renewed["fence"], fence);
    assert!(time(&renewed["expires_at"]) > time(&a["expires_at"]));

    // Another holder is refused, told who holds it and until when.
    let (status, held) = take(&env.reader, "s1", "host-b", None);
    assert_eq!(status, 409);
    assert_eq!(held["code"], "lease_held");
    assert_eq!(held["holder"], "host-a");
    assert_eq!(
        time(&held["expires_at"]),
        time(&renewed["expires_at"]),
        "{held}"
    );
    assert!(held["error"].as_str().unwrap().contains("host-a"));

    let got = env.reader.get("/api/v1/sessions/s1/lease");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["fence"], fence);
    assert_eq!(got.json()["holder"], "host-a");

    // Wrong fence or wrong holder: stale, nothing released.
    let (status, body) = release(&env.reader, "s1", "host-a", fence + 1);
    assert_eq!((status, body["code"].as_str()), (409, Some("stale_lease")));
    assert_eq!(body["holder"], "host-a");
    let (status, body) = release(&env.reader, "s1", "host-b", fence);
    assert_eq!((status, body["code"].as_str()), (409, Some("stale_lease")));
    assert_eq!(env.reader.get("/api/v1/sessions/s1/lease").status, 200);

    let (status, _) = release(&env.reader, "s1", "host-a", fence);
    assert_eq!(status, 204);
    let gone = env.reader.get("/api/v1/sessions/s1/lease");
    assert_eq!(
        (gone.status, gone.json()["code"].clone()),
        (404, json!("no_lease"))
    );
    // Released twice: the lease is no longer this one.
    let (status, body) = release(&env.reader, "s1", "host-a", fence);
    assert_eq!((status, body["code"].as_str()), (409, Some("stale_lease")));
    assert_eq!(body.get("holder"), None);

    // Free again: the other holder gets it, with a larger fence.
    let (status, b) = take(&env.reader, "s1", "host-b", None);
    assert_eq!(status, 200);
    assert!(b["fence"].as_i64().unwrap() > fence);
    // The default TTL is 60 s.
    let secs = (time(&b["expires_at"]) - chrono::Utc::now()).num_seconds();
    assert!((55..=61).contains(&secs), "{secs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_unknown_and_inactive_sessions() {
    let env = start().await;
    create(&env.admin, "u1", "s1");
    let r = &env.reader;
    for (ttl, ok) in [
        (4, false),
        (5, true),
        (3600, true),
        (3601, false),
        (0, false),
    ] {
        let (status, body) = take(r, "s1", "h", Some(ttl));
        if ok {
            assert_eq!(status, 200, "ttl {ttl}: {body}");
        } else {
            assert_eq!(status, 422, "ttl {ttl}");
            assert_eq!(body["field"], "ttl_seconds");
        }
    }
    let (status, body) = take(r, "s1", "bad holder/..", None);
    assert_eq!((status, body["field"].as_str()), (422, Some("holder")));
    let (status, body) = take(r, "s1", "", None);
    assert_eq!((status, body["field"].as_str()), (422, Some("holder")));
    let missing = r.post_json("/api/v1/sessions/s1/lease", &json!({"ttl_seconds": 10}));
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json()["field"], "holder");
    let unknown = r.post_json(
        "/api/v1/sessions/s1/lease",
        &json!({"holder": "h", "extra": 1}),
    );
    assert_eq!(unknown.status, 422);

    // No such session: 404 not_found everywhere (not no_lease).
    let (status, body) = take(r, "nope", "h", None);
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(
        r.get("/api/v1/sessions/nope/lease").json()["code"],
        "not_found"
    );
    let (status, _) = release(r, "nope", "h", 1);
    assert_eq!(status, 404);
    let broke = env
        .admin
        .post_json("/api/v1/sessions/nope/lease/break", &json!({}));
    assert_eq!(broke.status, 404);
    assert_eq!(broke.json()["code"], "not_found");

    // Release needs both holder and fence.
    assert_eq!(r.delete("/api/v1/sessions/s1/lease?holder=h").status, 400);
    assert_eq!(
        r.delete("/api/v1/sessions/s1/lease?holder=h&fence=x")
            .status,
        400
    );

    // A deactivated session has no lease to give.
    create(&env.admin, "u2", "s2");
    assert_eq!(env.admin.delete("/api/v1/sessions/s2").status, 204);
    let (status, body) = take(r, "s2", "h", None);
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("session_inactive"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_break_and_audit() {
    let env = start().await;
    create(&env.admin, "u1", "s1");
    let writer = env
        .server
        .client()
        .with_token(&create_token(&env.db, "writer", "sessions:write"));
    let (status, body) = take(&writer, "s1", "h", None);
    assert_eq!(
        (status, body["required_scope"].as_str()),
        (403, Some("sessions:read"))
    );
    assert_eq!(writer.get("/api/v1/sessions/s1/lease").status, 403);
    assert_eq!(
        env.server.client().get("/api/v1/sessions/s1/lease").status,
        401
    );

    let (_, a) = take(&env.reader, "s1", "host-a", None);
    let fa = a["fence"].as_i64().unwrap();
    take(&env.reader, "s1", "host-a", None); // a renewal: not audited

    // Breaking is for admin only.
    let denied = env
        .reader
        .post_json("/api/v1/sessions/s1/lease/break", &json!({}));
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["required_scope"], "admin");
    let broken = env
        .admin
        .post_json("/api/v1/sessions/s1/lease/break", &json!({}));
    assert_eq!(broken.status, 200);
    assert_eq!(broken.json()["holder"], "host-a");
    let again = env
        .admin
        .post_json("/api/v1/sessions/s1/lease/break", &json!({}));
    assert_eq!(
        (again.status, again.json()["code"].clone()),
        (404, json!("no_lease"))
    );
    // The broken holder's fence is dead.
    let (status, _) = release(&env.reader, "s1", "host-a", fa);
    assert_eq!(status, 409);

    // An expired lease is taken over by another holder.
    let (_, b) = take(&env.reader, "s1", "host-b", Some(5));
    let fb = b["fence"].as_i64().unwrap();
    assert!(fb > fa);
    expire(&env.db, "s1").await;
    assert_eq!(
        env.reader.get("/api/v1/sessions/s1/lease").status,
        404,
        "expired is no lease"
    );
    let (status, c) = take(&env.reader, "s1", "host-c", None);
    assert_eq!(status, 200);
    let fc = c["fence"].as_i64().unwrap();
    assert!(fc > fb);
    // The expired holder can neither renew nor keep its fence alive.
    let renew = env.reader.post_json(
        "/api/v1/leases/renew",
        &json!({"holder": "host-b", "fences": {"s1": fb}}),
    );
    assert_eq!(renew.json()["lost"], json!(["s1"]));
    assert_eq!(release(&env.reader, "s1", "host-c", fc).0, 204);

    let trail = env.admin.get("/api/v1/sessions/s1/activity").json();
    let kinds: Vec<(String, String)> = trail["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["activity_type"].as_str().unwrap().starts_with("lease"))
        .map(|a| {
            (
                a["activity_type"].as_str().unwrap().to_owned(),
                a["actor"].as_str().unwrap().to_owned(),
            )
        })
        .rev()
        .collect();
    let expected: Vec<(String, String)> = [
        ("lease_taken", "agent"),
        ("lease_broken", "admin"),
        ("lease_taken", "agent"),
        ("lease_taken_over", "agent"),
        ("lease_released", "agent"),
    ]
    .iter()
    .map(|(k, a)| (k.to_string(), a.to_string()))
    .collect();
    assert_eq!(kinds, expected, "renewals are not audited");
    let over = trail["activity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["activity_type"] == "lease_taken_over")
        .unwrap();
    assert_eq!(over["details"]["prior_holder"], "host-b");
    assert_eq!(over["details"]["holder"], "host-c");
    assert_eq!(over["details"]["fence"], fc);

    let metrics = String::from_utf8(env.server.client().get("/metrics").body).unwrap();
    let renewals: f64 = metrics
        .lines()
        .find(|l| l.starts_with("vibee_lease_renewals_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("vibee_lease_renewals_total is exported");
    assert_eq!(
        renewals, 1.0,
        "one renewal (the failed batch renewed nothing)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_renewal_list_and_stats() {
    let env = start().await;
    for i in 0..4 {
        create(&env.admin, &format!("u{i}"), &format!("s{i}"));
    }
    let mut fences = serde_json::Map::new();
    for i in 0..3 {
        let (_, l) = take(&env.reader, &format!("s{i}"), "host-a", Some(10));
        fences.insert(format!("s{i}"), l["fence"].clone());
    }
    let before = take(&env.reader, "s0", "host-a", Some(10)).1["expires_at"].clone();
    // s1: a wrong fence; s2: released; s3: never held.
    let f1 = fences["s1"].as_i64().unwrap();
    fences.insert("s1".into(), json!(f1 + 1000));
    let f2 = fences["s2"].as_i64().unwrap();
    assert_eq!(release(&env.reader, "s2", "host-a", f2).0, 204);
    fences.insert("s3".into(), json!(1));
    let r = env.reader.post_json(
        "/api/v1/leases/renew",
        &json!({"holder": "host-a", "ttl_seconds": 120, "fences": fences}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let renewed = body["renewed"].as_array().unwrap();
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0]["session_id"], "s0");
    assert!(time(&renewed[0]["expires_at"]) > time(&before));
    let mut lost: Vec<&str> = body["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    lost.sort();
    assert_eq!(lost, ["s1", "s2", "s3"]);

    // Another holder cannot renew what it does not hold.
    let other = env.reader.post_json(
        "/api/v1/leases/renew",
        &json!({"holder": "host-b", "fences": {"s0": fences["s0"]}}),
    );
    assert_eq!(other.json()["lost"], json!(["s0"]));
    let bad = env.reader.post_json(
        "/api/v1/leases/renew",
        &json!({"holder": "host-a", "ttl_seconds": 1, "fences": {}}),
    );
    assert_eq!(
        (bad.status, bad.json()["field"].clone()),
        (422, json!("ttl_seconds"))
    );

    // A batch bigger than the default body limit (256 KiB) is accepted.
    let big: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("session-{i:06}-{}", "x".repeat(20)), json!(i + 1)))
        .collect();
    let r = env.reader.post_json(
        "/api/v1/leases/renew",
        &json!({"holder": "host-a", "fences": big}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["lost"].as_array().unwrap().len(), 10_000);
    let mut too_many = big;
    too_many.insert("one-more".into(), json!(1));
    let r = env.reader.post_json(
        "/api/v1/leases/renew",
        &json!({"holder": "host-a", "fences": too_many}),
    );
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (422, json!("fences"))
    );

    // The list shows holders and expiry; stats held / free.
    let list = env.admin.get("/api/v1/sessions").json();
    let by_id: std::collections::HashMap<&str, &Value> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["session_id"].as_str().unwrap(), s))
        .collect();
    assert_eq!(by_id["s0"]["lease"]["holder"], "host-a");
    assert_eq!(by_id["s0"]["lease"]["fence"], fences["s0"]);
    assert!(by_id["s0"]["lease"]["expires_at"].is_string());
    assert_eq!(by_id["s1"]["lease"]["holder"], "host-a");
    assert_eq!(by_id["s2"]["lease"], Value::Null);
    let stats = env
        .admin
        .send(
            "GET",
            "/api/v1/stats",
            None,
            &[("cache-control", "no-cache")],
        )
        .json();
    assert_eq!(stats["leases"], json!({"held": 2, "free": 2}));

    // Heartbeats: the live holders, sorted; a leaving one is gone.
    let hb = |h: &str| {
        env.reader
            .post_json(
                "/api/v1/leases/holders",
                &json!({"holder": h, "ttl_seconds": 30}),
            )
            .json()["holders"]
            .clone()
    };
    assert_eq!(hb("loader-b"), json!(["loader-b"]));
    assert_eq!(hb("loader-a"), json!(["loader-a", "loader-b"]));
    assert_eq!(
        env.reader.delete("/api/v1/leases/holders/loader-b").status,
        204
    );
    assert_eq!(hb("loader-a"), json!(["loader-a"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn fences_only_grow_across_purge_recreate_and_restart() {
    let mut env = start().await;
    let mut seen = Vec::new();
    create(&env.admin, "u1", "s1");
    let (_, l) = take(&env.reader, "s1", "a", None);
    seen.push(l["fence"].as_i64().unwrap());
    // Renewals keep it; every change of hands grows it.
    assert_eq!(take(&env.reader, "s1", "a", None).1["fence"], l["fence"]);
    release(&env.reader, "s1", "a", seen[0]);
    seen.push(
        take(&env.reader, "s1", "b", None).1["fence"]
            .as_i64()
            .unwrap(),
    );
    expire(&env.db, "s1").await;
    seen.push(
        take(&env.reader, "s1", "b", None).1["fence"]
            .as_i64()
            .unwrap(),
    );

    // Purged (a live lease refuses a purge: let it run out) and created
    // again under the same ids: still larger.
    expire(&env.db, "s1").await;
    assert_eq!(
        env.admin.delete("/api/v1/sessions/s1?purge=true").status,
        204
    );
    assert_eq!(env.reader.get("/api/v1/sessions/s1/lease").status, 404);
    create(&env.admin, "u1", "s1");
    assert_eq!(
        env.reader.get("/api/v1/sessions/s1/lease").json()["code"],
        "no_lease"
    );
    seen.push(
        take(&env.reader, "s1", "a", None).1["fence"]
            .as_i64()
            .unwrap(),
    );

    // A server restart, and a data-key rotation in between.
    env.server.stop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
        .args(["rotate", "--grace-ms", "0"])
        .env_clear()
        .env("DATABASE_URL", &env.db.url)
        .env("MASTER_KEY", env.key.base64())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.server = Server::start(&env.db, &env.key);
    let reader = env
        .server
        .client()
        .with_token(env.reader.token.as_deref().unwrap());
    let l = reader.get("/api/v1/sessions/s1/lease").json();
    assert_eq!(
        l["fence"].as_i64().unwrap(),
        seen[3],
        "a lease survives a restart"
    );
    expire(&env.db, "s1").await;
    seen.push(take(&reader, "s1", "c", None).1["fence"].as_i64().unwrap());
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "fences grow strictly: {seen:?}"
    );
}

/// A `sessions:boot` token (an agent host's) lists active sessions only
/// (docs/SECURITY.md): asking for deactivated ones, by `include_inactive`
/// or by `is_active=false`, is a 403 naming `sessions:list`.
#[tokio::test(flavor = "multi_thread")]
async fn a_boot_token_lists_active_sessions_only() {
    let env = start().await;
    create(&env.admin, "u-on", "s-on");
    create(&env.admin, "u-off", "s-off");
    assert_eq!(env.admin.delete("/api/v1/sessions/s-off").status, 204);
    let boot =
        env.server
            .client()
            .with_token(&create_token(&env.db, "agent-host", "sessions:boot"));
    let lister = env
        .server
        .client()
        .with_token(&create_token(&env.db, "lister", "sessions:list"));
    let listed = |api: &common::server::Http, query: &str| {
        let r = api.get(&format!("/api/v1/sessions?{query}"));
        let ids: Vec<String> = if r.status == 200 {
            r.json()["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_owned())
                .collect()
        } else {
            vec![r.json()["required_scope"].as_str().unwrap_or("").to_owned()]
        };
        (r.status, ids)
    };
    let on = vec!["s-on".to_owned()];
    assert_eq!(listed(&boot, ""), (200, on.clone()));
    assert_eq!(listed(&boot, "is_active=true"), (200, on.clone()));
    let refused = (403, vec!["sessions:list".to_owned()]);
    assert_eq!(listed(&boot, "include_inactive=true"), refused);
    assert_eq!(listed(&boot, "is_active=false"), refused);
    assert_eq!(
        listed(&boot, "include_inactive=true&is_active=false"),
        refused
    );
    // A sessions:list token sees them.
    assert_eq!(
        listed(&lister, "is_active=false"),
        (200, vec!["s-off".to_owned()])
    );
}

/// A take that waits on a purge in flight (the session row locked by its
/// DELETE) and finds the session gone once it commits: 404 `not_found`,
/// as for any unknown session, never a 500 from the foreign key.
#[tokio::test(flavor = "multi_thread")]
async fn a_take_racing_a_purge_is_a_404() {
    let env = start().await;
    create(&env.admin, "u1", "s1");
    let sql = env.db.client().await;
    sql.batch_execute("BEGIN; DELETE FROM user_sessions WHERE session_id = 's1'")
        .await
        .unwrap();
    let reader = env.reader.clone();
    let taking = std::thread::spawn(move || take(&reader, "s1", "host-a", None));
    // The take is waiting on the row lock by now (or has not started: then
    // it finds no session, the same answer).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sql.batch_execute("COMMIT").await.unwrap();
    let (status, body) = taking.join().unwrap();
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("not_found")),
        "{body}"
    );
}
