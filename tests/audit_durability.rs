//! A credentials read fails closed. Its audit row is
//! committed before the secret leaves, so a server killed with SIGKILL while
//! `session_activity` is locked has answered no read it did not record.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use common::server::{Server, create_token};
use common::{TestDb, TestKey};
use serde_json::json;

const HASH: &str = "0123456789abcdef0123456789abcdef";

/// What one read came back with: its request id and status, or that the
/// connection failed (the server was killed while it waited).
type Outcome = (String, Option<u16>);

fn read(base: &str, token: &str, path: &str, request_id: &str) -> Outcome {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let status = agent
        .get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", request_id)
        .call()
        .ok()
        .map(|r| r.status().as_u16());
    (request_id.to_owned(), status)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_answered_200_always_has_its_audit_row_even_after_kill_9() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let mut server = Server::start(&db, &key);
    let writer = create_token(&db, "writer", "sessions:write");
    let reader = create_token(&db, "reader", "sessions:read");
    let created = server.client().with_token(&writer).post_json(
        "/api/v1/sessions",
        &json!({
            "user_id": "tenant-1", "session_id": "sess-1", "api_id": 1, "api_hash": HASH,
            "session_data": base64::engine::general_purpose::STANDARD.encode(b"blob"),
        }),
    );
    assert_eq!(created.status, 201);

    // Reads with the audit table free: each 200 already has its row.
    for i in 0..5 {
        let (_, status) = read(
            &server.base,
            &reader,
            "/api/v1/users/tenant-1/session",
            &format!("free-{i}"),
        );
        assert_eq!(status, Some(200));
    }

    // Someone holds the audit table: reads must wait, not answer.
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE session_activity IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel::<Outcome>();
    for i in 0..16 {
        let (base, token, tx) = (server.base.clone(), reader.clone(), tx.clone());
        let path = if i % 2 == 0 {
            "/api/v1/users/tenant-1/session"
        } else {
            "/api/v1/sessions/sess-1/data"
        };
        std::thread::spawn(move || {
            let _ = tx.send(read(&base, &token, path, &format!("locked-{i}")));
        });
    }
    drop(tx);
    std::thread::sleep(Duration::from_secs(2));
    let answered_early: Vec<Outcome> = rx.try_iter().collect();

    server.kill();
    let rest: Vec<Outcome> = rx.iter().collect();
    locker.batch_execute("ROLLBACK").await.unwrap();

    let answered: Vec<&Outcome> = answered_early
        .iter()
        .chain(&rest)
        .filter(|(_, s)| s.is_some())
        .collect();
    let admin = db.client().await;
    for (request_id, status) in &answered {
        let rows: i64 = admin
            .query_one(
                "SELECT count(*) FROM session_activity WHERE request_id = $1 \
                 AND activity_type IN ('credentials_read', 'session_data_read')",
                &[request_id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            rows, 1,
            "read {request_id} was answered {status:?} without a committed audit row"
        );
    }
    assert!(
        answered_early.is_empty(),
        "reads answered while the audit table was locked: {answered_early:?}"
    );
    let free: i64 = admin
        .query_one(
            "SELECT count(*) FROM session_activity WHERE request_id LIKE 'free-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(free, 5);
}
