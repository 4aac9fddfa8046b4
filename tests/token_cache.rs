//! The token cache stops trusting itself when its listener goes silent: the
//! PostgreSQL backend of the server's LISTEN connection is frozen (SIGSTOP:
//! no error, no notification, no answer to pings), a token warm in the cache
//! is revoked, and after the documented bound (TRUST_WINDOW, 2 s) the server
//! answers 401 from the database instead of 200 from the cache.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{Http, Server, create_token};
use common::{TestDb, TestKey};

fn cache_hits(server: &Server) -> u64 {
    let metrics = String::from_utf8(Http::new(&server.base).get("/metrics").body).unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("vibee_token_cache_hits_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Resumes a frozen backend whatever happens to the test.
struct Frozen(i32);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silently_dead_listener_turns_the_cache_off_within_its_bound() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start(&db, &key);
    let token = create_token(&db, "warm", "sessions:list");
    let client = server.client().with_token(&token);
    let mut warm = false;
    for _ in 0..100 {
        assert_eq!(client.get("/api/v1/sessions").status, 200);
        if cache_hits(&server) > 0 {
            warm = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(warm, "the token check was never answered from the cache");
    let admin = db.client().await;
    let pid: i32 = admin
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND (query = 'LISTEN vibee_tokens' OR query LIKE '%-- vibee_tokens listener keep-alive')",
            &[],
        )
        .await
        .expect("the server's token listener is connected")
        .get(0);
    // The backend must be local to be frozen (tests run against 127.0.0.1).
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _frozen = Frozen(pid);
    // Warm again right now, so a cache entry is fresh (TTL 5 s) when the
    // revocation lands; its notification cannot be delivered.
    assert_eq!(client.get("/api/v1/sessions").status, 200);
    admin
        .execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE name = 'warm'",
            &[],
        )
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        client.get("/api/v1/sessions").status,
        401,
        "a revoked token was still trusted from the cache past the listener's silence bound"
    );
}
