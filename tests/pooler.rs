//! `serve` behind a real PgBouncer (Debian's 1.18) in transaction mode:
//! writes need `DATABASE_PREPARED_STATEMENTS=off`, LISTEN through the pooler
//! is refused, and revocations and key rotations by other processes still
//! reach the server within seconds through `DATABASE_DIRECT_URL`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::pgbouncer::PgBouncer;
use common::server::{Http, Server, create_token};
use common::{TestDb, TestKey};
use serde_json::{Value, json};

const HASH: &str = "0123456789abcdef0123456789abcdef";

fn session(user_id: &str) -> Value {
    json!({
        "user_id": user_id,
        "api_id": 12345,
        "api_hash": HASH,
        "session_data": base64::engine::general_purpose::STANDARD.encode(b"mtproto blob"),
    })
}

/// `n` upserts from 32 threads at once; the status of each.
fn concurrent_upserts(api: &Http, prefix: &str, n: usize) -> Vec<(u16, String)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|t| {
                let api = api.clone();
                s.spawn(move || {
                    (t..n)
                        .step_by(32)
                        .map(|i| {
                            let r = api
                                .post_json("/api/v1/sessions", &session(&format!("{prefix}{i}")));
                            (r.status, String::from_utf8_lossy(&r.body).into_owned())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn through_bouncer<'a>(
    bouncer_url: &'a str,
    db: &'a TestDb,
    prepared: &'a str,
) -> [(&'a str, &'a str); 3] {
    [
        ("DATABASE_URL", bouncer_url),
        ("DATABASE_DIRECT_URL", db.url.as_str()),
        ("DATABASE_PREPARED_STATEMENTS", prepared),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_through_pgbouncer_work_with_prepared_statements_off_only() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let bouncer = PgBouncer::start(&[]);
    let pooled = bouncer.url(&db.url);
    let token = create_token(&db, "writer", "sessions:write,sessions:read");

    // Named statements, as before the switch: the pooler hands the Bind to a
    // server connection that never saw the Parse.
    let mut server = Server::start_with(&db, &key, &through_bouncer(&pooled, &db, "on"));
    let api = server.client().with_token(&token);
    let results = concurrent_upserts(&api, "on-", 256);
    let failed: Vec<_> = results.iter().filter(|(s, _)| *s >= 500).collect();
    assert!(
        !failed.is_empty(),
        "with named prepared statements every write went through PgBouncer 1.18: \
         the switch would not be needed"
    );
    // And the server said why, and what to set, on its own.
    let start = Instant::now();
    while !server
        .logs()
        .contains("set DATABASE_PREPARED_STATEMENTS=off")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no warning about the pooler: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();

    let server = Server::start_with(&db, &key, &through_bouncer(&pooled, &db, "off"));
    // PgBouncer dropped the pool's `options`, and the test's role has no
    // defaults: the server says its request path is unbounded, and the fix.
    assert!(
        server
            .logs()
            .contains("statement_timeout=0 ms and lock_timeout=0 ms"),
        "{}",
        server.logs()
    );
    let api = server.client().with_token(&token);
    let results = concurrent_upserts(&api, "off-", 256);
    let bad: Vec<_> = results.iter().filter(|(s, _)| *s != 201).collect();
    assert!(
        bad.is_empty(),
        "{} of 256 failed: {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    for i in [0, 100, 255] {
        let meta = api.get(&format!("/api/v1/users/off-{i}/session"));
        assert_eq!(meta.status, 200);
        assert_eq!(meta.json()["api_hash"], HASH);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_through_a_transaction_pooler_is_refused_with_the_reason() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let bouncer = PgBouncer::start(&[]);
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", bouncer.url(&db.url))
        .env("DATABASE_PREPARED_STATEMENTS", "off")
        .env("MASTER_KEY", key.base64())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("DATABASE_DIRECT_URL") && stderr.contains("transaction-mode pooler"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // The same for the commands that take a session advisory lock.
    for args in [&["migrate"][..], &["rotate"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("DATABASE_DIRECT_URL", bouncer.url(&db.url))
            .env("MASTER_KEY", key.base64())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("transaction-mode pooler"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_and_rotation_by_other_processes_take_effect_through_the_pooler() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let bouncer = PgBouncer::start(&[]);
    let pooled = bouncer.url(&db.url);
    let mut env = through_bouncer(&pooled, &db, "off").to_vec();
    // The periodic reload is far away: only a notification can be this quick.
    env.push(("KEY_REFRESH_SECS", "300"));
    let server = Server::start_with(&db, &key, &env);
    let token = create_token(&db, "bridge", "sessions:write,sessions:read");
    let api = server.client().with_token(&token);
    assert_eq!(
        api.post_json("/api/v1/sessions", &session("t0")).status,
        201
    );

    // Another process, through the pooler too, revokes the token.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &pooled)
            .env("DATABASE_DIRECT_URL", &db.url)
            .env("DATABASE_PREPARED_STATEMENTS", "off")
            .env("MASTER_KEY", key.base64())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["token", "revoke", "bridge"]);
    let start = Instant::now();
    loop {
        let r = api.get("/api/v1/users/t0/session");
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the revocation did not take effect within 3 s through the pooler"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Another process rotates the data key; the server follows at once.
    cli(&["rotate", "--grace-ms", "0"]);
    let start = Instant::now();
    while !server.logs().contains("new primary data key") {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the rotation was not heard within 3 s: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let token = create_token(&db, "after", "sessions:write,sessions:read");
    let api = server.client().with_token(&token);
    assert_eq!(
        api.post_json("/api/v1/sessions", &session("t1")).status,
        201
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT (SELECT data_key_id FROM user_sessions WHERE user_id = 't1') = \
                    (SELECT id FROM encryption_keys WHERE state = 'primary')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the new row is not under the new primary key"
    );
}

#[test]
fn a_bad_prepared_statements_setting_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("DATABASE_PREPARED_STATEMENTS", "maybe")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("DATABASE_PREPARED_STATEMENTS must be one of on, off, not \"maybe\""),
        "{stderr}"
    );
}
