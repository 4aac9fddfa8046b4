//! `GET /api/v1/stats` served from a shared snapshot, against a real `serve`
//! and PostgreSQL: computed at most once per `STATS_MAX_AGE_SECS`, by one
//! computation however many callers wait, and anew for `Cache-Control:
//! no-cache`. The computations are counted by
//! `vibee_stats_computations_total` on `/metrics`.

mod common;

use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::server::{Http, Response, Server, create_token, session};
use common::{TestDb, TestKey};
use serde_json::Value;

struct Env {
    _db: TestDb,
    server: Server,
    admin: Http,
}

/// A server whose shared stats stay fresh for an hour: within one test,
/// only `no-cache` or a first call computes them.
async fn start() -> Env {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start_with(&db, &key, &[("STATS_MAX_AGE_SECS", "3600")]);
    let token = create_token(&db, "admin", "admin");
    let admin = server.client().with_token(&token);
    Env {
        _db: db,
        server,
        admin,
    }
}

fn stats(client: &Http, cache_control: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = cache_control
        .map(|v| vec![("cache-control", v)])
        .unwrap_or_default();
    let r = client.send("GET", "/api/v1/stats", None, &headers);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r
}

fn as_of(body: &Value) -> DateTime<Utc> {
    body["as_of"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no as_of timestamp in {body}"))
}

/// How many times this server has computed its stats.
fn computations(server: &Server) -> u64 {
    let text = String::from_utf8(Http::new(&server.base).get("/metrics").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("vibee_stats_computations_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_copy_is_served_until_no_cache_asks_for_a_new_one() {
    let env = start().await;
    let first = stats(&env.admin, None);
    let first_body = first.json();
    assert_eq!(first_body["sessions"]["total"], 0);
    assert_eq!(computations(&env.server), 1);

    // Within the max age: the same figures, the same as_of, although a
    // session was written in between; no second scan.
    assert_eq!(
        env.admin
            .post_json("/api/v1/sessions", &session("u1"))
            .status,
        201
    );
    let cached = stats(&env.admin, None);
    let cached_body = cached.json();
    assert_eq!(as_of(&cached_body), as_of(&first_body));
    assert_eq!(
        cached_body["sessions"]["total"], 0,
        "the write is not in the shared copy"
    );
    let age: u64 = cached.header("age").unwrap().parse().unwrap();
    assert!(age < 3600, "Age {age}");
    assert_eq!(computations(&env.server), 1);
    // Other directives take the shared copy too.
    let other = stats(&env.admin, Some("max-age=60, no-transform")).json();
    assert_eq!(as_of(&other), as_of(&first_body));

    // no-cache: computed after the request arrived, so the write made
    // before it is counted; the server's clock is this host's.
    let asked = Utc::now();
    let fresh = stats(&env.admin, Some("no-cache"));
    let fresh_body = fresh.json();
    assert_eq!(fresh_body["sessions"]["total"], 1);
    assert_eq!(fresh_body["sessions"]["active"], 1);
    assert!(as_of(&fresh_body) > as_of(&first_body));
    assert!(
        as_of(&fresh_body) >= asked,
        "as_of {} predates the request ({asked})",
        as_of(&fresh_body)
    );
    assert_eq!(fresh.header("age"), Some("0"));
    assert_eq!(computations(&env.server), 2);
    // The new figures are now the shared copy.
    let after = stats(&env.admin, None).json();
    assert_eq!(as_of(&after), as_of(&fresh_body));
    assert_eq!(after["sessions"]["total"], 1);
    // max-age=0 revalidates as no-cache does.
    let zero = stats(&env.admin, Some("max-age=0")).json();
    assert!(as_of(&zero) > as_of(&fresh_body));
    assert_eq!(computations(&env.server), 3);
}

/// `n` callers at once, each from its own thread.
fn burst(client: &Http, n: usize, cache_control: Option<&'static str>) -> Vec<JoinHandle<Value>> {
    let start = Arc::new(Barrier::new(n));
    (0..n)
        .map(|_| {
            let (client, start) = (client.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                stats(&client, cache_control).json()
            })
        })
        .collect()
}

fn answers(callers: Vec<JoinHandle<Value>>) -> Vec<Value> {
    callers.into_iter().map(|c| c.join().unwrap()).collect()
}

/// Waits until `condition` holds (checked every 50 ms, up to 30 s).
async fn until<F: std::future::Future<Output = bool>>(what: &str, condition: impl Fn() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_callers_share_one_computation() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    // tower_http's DEBUG line per request tells when each request is in.
    let server = Server::start_with(
        &db,
        &key,
        &[
            ("STATS_MAX_AGE_SECS", "3600"),
            ("RUST_LOG", "info,tower_http=debug"),
        ],
    );
    let admin = server
        .client()
        .with_token(&create_token(&db, "admin", "admin"));
    assert_eq!(
        admin.post_json("/api/v1/sessions", &session("u1")).status,
        201
    );

    // A cold cache and 50 callers at once: one scan, one as_of.
    let seen = answers(burst(&admin, 50, None));
    assert_eq!(computations(&server), 1);
    assert!(seen.iter().all(|s| as_of(s) == as_of(&seen[0])));

    // no-cache waits for a computation that started after the request
    // arrived. Hold one computation (C2) on a lock after its scan of
    // user_sessions (u1 active), deactivate u1, and send 20 no-cache callers
    // while C2 waits: none may take C2's figures, and none starts its own
    // scan beside it; they share one computation after it (C3). All within
    // the pool's lock_timeout (5 s), past which C2 would fail.
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE session_leases IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let held = burst(&admin, 1, Some("no-cache"));
    let watcher = &db.client().await;
    until("C2 waits for the lock", || async move {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE '%session_leases%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        waiting > 0
    })
    .await;
    watcher
        .batch_execute("UPDATE user_sessions SET is_active = false WHERE user_id = 'u1'")
        .await
        .unwrap();
    let arrived_before = server.logs().matches("started processing request").count();
    let fresh = burst(&admin, 20, Some("no-cache"));
    let server = &server;
    until("the 20 requests are in", || async move {
        server.logs().matches("started processing request").count() >= arrived_before + 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(computations(server), 2, "no scan beside the running one");
    locker.batch_execute("ROLLBACK").await.unwrap();

    let c2 = answers(held).remove(0);
    assert_eq!(
        c2["sessions"]["active"], 1,
        "C2 scanned before the deactivation"
    );
    let fresh = answers(fresh);
    assert_eq!(computations(server), 3, "one computation for the 20");
    for s in &fresh {
        assert_eq!(
            s["sessions"]["active"], 0,
            "an answer older than the request: {s}"
        );
        assert!(as_of(s) > as_of(&c2));
        assert_eq!(as_of(s), as_of(&fresh[0]));
    }
}
