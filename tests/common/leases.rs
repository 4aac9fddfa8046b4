//! What the lease tests share: a served database with an admin and a
//! `sessions:read` client, and the lease calls over REST.

use serde_json::{Value, json};

use super::server::{Http, Server, create_token};
use super::{TestDb, TestKey};

pub const HASH: &str = "0123456789abcdef0123456789abcdef";

pub struct Env {
    pub db: TestDb,
    pub key: TestKey,
    pub server: Server,
    pub admin: Http,
    pub reader: Http,
}

pub async fn start() -> Env {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start(&db, &key);
    let admin = server
        .client()
        .with_token(&create_token(&db, "admin", "admin"));
    let reader = server
        .client()
        .with_token(&create_token(&db, "agent", "sessions:read"));
    Env {
        db,
        key,
        server,
        admin,
        reader,
    }
}

pub fn create(api: &Http, user_id: &str, session_id: &str) {
    let r = api.post_json(
        "/api/v1/sessions",
        &json!({"user_id": user_id, "session_id": session_id, "api_id": 1, "api_hash": HASH}),
    );
    assert!(r.status == 201 || r.status == 200, "{}", r.status);
}

pub fn take(api: &Http, sid: &str, holder: &str, ttl: Option<i64>) -> (u16, Value) {
    let mut body = json!({ "holder": holder });
    if let Some(t) = ttl {
        body["ttl_seconds"] = json!(t);
    }
    let r = api.post_json(&format!("/api/v1/sessions/{sid}/lease"), &body);
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

pub fn release(api: &Http, sid: &str, holder: &str, fence: i64) -> (u16, Value) {
    let r = api.delete(&format!(
        "/api/v1/sessions/{sid}/lease?holder={holder}&fence={fence}"
    ));
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

pub fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// Makes a lease look expired, by the database clock, without waiting.
pub async fn expire(db: &TestDb, sid: &str) {
    db.client()
        .await
        .execute(
            "UPDATE session_leases SET expires_at = now() - interval '1 second' WHERE session_id = $1",
            &[&sid],
        )
        .await
        .unwrap();
}
