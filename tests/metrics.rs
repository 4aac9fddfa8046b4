//! `/metrics` against the real server: bounded label sets, gauges that a
//! scrape does not compute, and optional bearer auth.

mod common;

use std::time::Duration;

use common::server::{Http, Server, create_token};
use common::{TestDb, TestKey};

/// One request with any method name (HTTP clients refuse invented ones):
/// the status code of the answer.
fn raw(base: &str, method: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method}: no status in {answer:?}"))
}

fn series(text: &str, metric: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn invented_methods_add_no_series() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start(&db, &key);
    let http = server.client();
    // Every label value a real client sends once, so the baseline holds them.
    for m in [
        "BREW0", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
    ] {
        raw(&server.base, m, "/api/v1/nowhere");
        raw(&server.base, m, "/healthz");
    }
    // A scrape counts itself: the first makes the series of /metrics.
    assert_eq!(http.get("/metrics").status, 200);
    let before = http.get("/metrics");
    assert_eq!(before.status, 200);
    let before = String::from_utf8(before.body).unwrap();
    for i in 0..2000 {
        let method = format!("BREW{i}");
        let path = if i % 2 == 0 {
            "/healthz"
        } else {
            "/api/v1/nowhere"
        };
        let status = raw(&server.base, &method, path);
        assert!(status >= 400, "{method}: {status}");
    }
    let after = String::from_utf8(http.get("/metrics").body).unwrap();
    for metric in ["http_requests_total", "http_request_duration_seconds_count"] {
        assert_eq!(
            series(&before, metric),
            series(&after, metric),
            "{metric}: 2,000 invented methods made new series"
        );
    }
    assert!(after.contains("method=\"other\""), "{after}");
    assert!(
        !after.contains("BREW1"),
        "an invented method became a label"
    );
}

/// A scrape takes no pool connection: with the key table locked (so any
/// query on it would wait for the 5 s lock timeout), scrapes answer at once,
/// and the key gauges are there, computed by the timer.
#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_does_not_query_the_database() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start_with(&db, &key, &[("METRICS_REFRESH_SECS", "1")]);
    let http = server.client();
    // The timer's first round.
    let mut text = String::new();
    for _ in 0..100 {
        text = String::from_utf8(http.get("/metrics").body).unwrap();
        if text.contains("vibee_data_key_rows{") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(text.contains("vibee_data_key_rows{"), "{text}");
    let mut locker = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE encryption_keys, user_sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let quick = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .new_agent();
    for _ in 0..5 {
        let r = quick.get(format!("{}/metrics", server.base)).call();
        let r = r.expect("a scrape answers while the database is locked");
        assert_eq!(r.status().as_u16(), 200);
    }
    drop(tx);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_require_a_bearer_token() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let secret = "metrics-secret-0123456789abcdef0123456789";
    let server = Server::start_with(&db, &key, &[("METRICS_TOKEN", secret)]);
    let anon = server.client();
    let r = anon.get("/metrics");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(anon.with_token("wrong").get("/metrics").status, 401);
    let r = anon.with_token(secret).get("/metrics");
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("http_requests_total"));
    // An admin API token may scrape too; a narrower one may not.
    let admin = create_token(&db, "prom", "admin");
    assert_eq!(anon.with_token(&admin).get("/metrics").status, 200);
    let read = create_token(&db, "reader", "sessions:read");
    assert_eq!(anon.with_token(&read).get("/metrics").status, 403);
    // Health checks stay open.
    assert_eq!(Http::new(&server.base).get("/healthz").status, 200);
    assert!(!server.logs().contains(secret), "the token is never logged");
}
