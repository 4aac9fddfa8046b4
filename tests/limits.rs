//! Per-caller limits of the real server: bogus tokens do not each cost a
//! database query, one token cannot hold more than its share of requests in
//! flight (429), and past the connection cap new connections are closed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::server::{HASH, Server, create_token};
use common::{TestDb, TestKey};
use serde_json::json;

fn counter(server: &Server, name: &str) -> u64 {
    let text = String::from_utf8(server.client().get("/metrics").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_bogus_token_costs_one_database_query() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start(&db, &key);
    let bogus = server
        .client()
        .with_token("vbs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // Until the server's token listener is up (which empties the caches
    // once), nothing is remembered: wait for a valid token's cache hit.
    let good = create_token(&db, "good", "sessions:list");
    let valid = server.client().with_token(&good);
    for _ in 0..100 {
        assert_eq!(valid.get("/api/v1/sessions").status, 200);
        if counter(&server, "vibee_token_cache_hits_total") > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = counter(&server, "vibee_token_cache_misses_total");
    let started = std::time::Instant::now();
    for _ in 0..200 {
        assert_eq!(bogus.get("/api/v1/sessions").status, 401);
    }
    // One lookup per 5 s TTL of the negative cache (a loaded machine may
    // take longer than one TTL for the 200 requests).
    let allowed = 1 + started.elapsed().as_secs() / 5;
    let after = counter(&server, "vibee_token_cache_misses_total");
    assert!(
        after - before <= allowed,
        "200 identical bogus tokens: {} lookups, at most {allowed} allowed",
        after - before
    );
    assert!(counter(&server, "vibee_token_unknown_cache_hits_total") >= 200 - allowed);
    // Distinct well-formed ones each cost a lookup (the counter counts what
    // it says); malformed ones (not `vbs_` and 43 base64url characters)
    // cost none.
    for i in 0..20 {
        for (token, status) in [
            (format!("vbs_distinct{i:035}"), 401),
            (format!("vbs_distinct_{i:040}"), 401),
            (format!("vbs_distinct{i:034}!"), 401),
        ] {
            let r = server.client().with_token(&token).get("/api/v1/sessions");
            assert_eq!(r.status, status);
        }
    }
    assert_eq!(
        counter(&server, "vibee_token_cache_misses_total") - after,
        20
    );
    // A real token is unaffected.
    assert_eq!(valid.get("/api/v1/sessions").status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_gets_429_past_its_concurrency_and_others_go_on() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start_with(
        &db,
        &key,
        &[
            ("TOKEN_MAX_CONCURRENCY", "2"),
            ("TOKEN_QUEUE_WAIT_SECS", "0"),
        ],
    );
    let admin = create_token(&db, "admin", "admin");
    let other = create_token(&db, "other", "sessions:list");
    let api = server.client().with_token(&admin);
    assert_eq!(
        api.post_json(
            "/api/v1/sessions",
            &json!({"user_id": "u1", "api_id": 1, "api_hash": HASH})
        )
        .status,
        201
    );
    // Hold every credentials read of `admin` on a table lock.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE user_sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let api = api.clone();
            std::thread::spawn(move || api.get("/api/v1/users/u1/session").status)
        })
        .collect();
    // Until both are in flight, a third may still get in: wait for them.
    let watcher = db.client().await;
    for _ in 0..200 {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = 'user_sessions' AND NOT l.granted",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = api.get("/api/v1/users/u1/session");
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["code"], "too_many_requests");
    // Another token is not held up by this one's limit.
    let r = server
        .client()
        .with_token(&other)
        .get("/api/v1/openapi.json");
    assert_eq!(r.status, 200);
    drop(tx);
    for t in slow {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(
        api.get("/api/v1/users/u1/session").status,
        200,
        "slots come back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_cap_new_connections_are_closed() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start_with(&db, &key, &[("HTTP_MAX_CONNECTIONS", "3")]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let read = extra.read_to_end(&mut answer);
    assert!(
        answer.is_empty() && read.is_ok_or_reset(),
        "a connection past the cap was served: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.client().get("/healthz").status, 200);
    assert!(counter(&server, "vibee_http_connections_refused_total") >= 1);
}

trait ClosedOk {
    fn is_ok_or_reset(&self) -> bool;
}

impl ClosedOk for std::io::Result<usize> {
    /// Closed by the server: a clean EOF or a reset, not a timeout.
    fn is_ok_or_reset(&self) -> bool {
        match self {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}
