//! A replica with a stale key ring can never leave a row
//! under a retired key. The database refuses such a write (a trigger), the
//! replica reloads its ring and re-seals; it refreshes through its pool when
//! its LISTEN connection is gone; and it stops encrypting (503) when it
//! cannot refresh at all.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{HASH, Http, Server, create_token};
use common::{TestDb, TestKey, bin, url_with_db};
use serde_json::json;

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn put(api: &Http, user: &str) -> u16 {
    api.post_json(
        "/api/v1/sessions",
        &json!({ "user_id": user, "api_id": 1, "api_hash": HASH, "phone": "+15551234567" }),
    )
    .status
}

/// Rows whose `data_key_id` names a key no process loads any more.
async fn rows_under_retired_keys(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM user_sessions s JOIN encryption_keys k ON k.id = s.data_key_id \
             WHERE k.state = 'retired'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Every row opens in a fresh process (which loads only live keys).
fn every_row_readable(db: &TestDb, key: &TestKey, users: &[&str]) {
    for user in users {
        run_ok(
            bin()
                .args(["session", "get", user, "--show-secrets", "--json"])
                .env("DATABASE_URL", &db.url)
                .env("MASTER_KEY", key.base64()),
        );
    }
}

/// A login role of its own for a replica, so its connections can be kept
/// out (`CONNECTION LIMIT 0`) without touching anyone else's.
struct Role {
    name: String,
    db_name: String,
}

impl Role {
    async fn new(db: &TestDb) -> Self {
        let name = format!("vs_role_{}", uuid::Uuid::new_v4().simple());
        let admin = db.client().await;
        admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN; \
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}; \
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {name}"
            ))
            .await
            .unwrap();
        Self {
            name,
            db_name: db.name.clone(),
        }
    }

    fn url(&self, db: &TestDb) -> String {
        url_with_db(&db.url, &db.name).replacen("postgres@", &format!("{}@", self.name), 1)
    }

    /// Keeps every new connection of the role out, and ends its listeners.
    async fn cut_listeners(&self, db: &TestDb) {
        let admin = db.client().await;
        admin
            .batch_execute(&format!("ALTER ROLE {} CONNECTION LIMIT 0", self.name))
            .await
            .unwrap();
        let ended: i64 = admin
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE usename = $1 AND application_name LIKE 'vibee-sessions listen%'",
                &[&self.name],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(ended, 2, "the key and token listeners of the replica");
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let (name, db_name) = (self.name.clone(), self.db_name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let url = url_with_db(&common::admin_url(), &db_name);
                let Ok(c) = vibee_sessions::db::DatabaseTarget::parse(&url)
                    .unwrap()
                    .connect_client()
                    .await
                else {
                    return;
                };
                let _ = c
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'; \
                         DROP OWNED BY {name}; DROP ROLE {name}"
                    ))
                    .await;
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_refuses_a_row_under_a_retired_key_with_its_own_sqlstate() {
    let db = TestDb::new().await;
    let sql = db.client().await;
    sql.batch_execute(
        "INSERT INTO encryption_keys (id, wrapped_key, kek_id, state) VALUES \
           (1, '\\x00', 'k', 'primary'), (2, '\\x00', 'k', 'active'), (3, '\\x00', 'k', 'retired'); \
         INSERT INTO user_sessions (id, user_id, session_id, api_id, api_hash_encrypted, data_key_id) \
           VALUES (gen_random_uuid(), 'u1', 's1', 1, '\\x01', 1), \
                  (gen_random_uuid(), 'u2', 's2', 1, '\\x01', 2)",
    )
    .await
    .unwrap();
    for (what, stmt) in [
        (
            "insert",
            "INSERT INTO user_sessions (id, user_id, session_id, api_id, api_hash_encrypted, data_key_id) \
             VALUES (gen_random_uuid(), 'u3', 's3', 1, '\\x01', 3)",
        ),
        (
            "re-point",
            "UPDATE user_sessions SET data_key_id = 3 WHERE user_id = 'u1'",
        ),
    ] {
        let err = sql
            .batch_execute(stmt)
            .await
            .expect_err(&format!("{what} under a retired key was accepted"));
        let db_err = err.as_db_error().expect("a database error");
        assert_eq!(
            db_err.code().code(),
            "VBK01",
            "{what}: {}",
            db_err.message()
        );
        assert_eq!(db_err.constraint(), Some("user_sessions_data_key_live"));
    }
    // Writes under the primary or an active key still pass.
    sql.batch_execute("UPDATE user_sessions SET data_key_id = 2 WHERE user_id = 'u1'")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_whose_listener_is_kept_out_during_a_rotation_leaves_no_row_unreadable() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let role = Role::new(&db).await;
    let token = create_token(&db, "writer", "sessions:write");
    // The replica, on its own role; its timer refresh is effectively off, so
    // what saves it here is the database refusing its stale write.
    let mut cmd = bin();
    cmd.args(["serve", "--no-migrate"])
        .env("DATABASE_URL", role.url(&db))
        .env("MASTER_KEY", key.base64())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("KEY_REFRESH_SECS", "3600")
        .env("RUST_LOG", "info");
    let replica = Server::spawn(cmd);
    let api = replica.client().with_token(&token);
    assert_eq!(put(&api, "before"), 201);
    // Its LISTEN connections go, and may not come back.
    role.cut_listeners(&db).await;
    std::thread::sleep(Duration::from_millis(300));

    run_ok(
        bin()
            .args(["rotate", "--grace-ms", "0"])
            .env("DATABASE_URL", &db.url)
            .env("MASTER_KEY", key.base64()),
    );
    // The replica still holds the old primary (now retired) as its primary.
    assert_eq!(put(&api, "after"), 201, "{}", replica.logs());
    assert_eq!(put(&api, "before"), 200, "{}", replica.logs());
    assert_eq!(
        rows_under_retired_keys(&db).await,
        0,
        "rows written under a retired key: {}",
        replica.logs()
    );
    assert!(
        replica
            .logs()
            .contains("a write was refused under a data key no longer live"),
        "the stale write was not refused by the database: {}",
        replica.logs()
    );
    every_row_readable(&db, &key, &["before", "after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_left_on_an_old_master_key_stops_encrypting_with_503() {
    let db = TestDb::new().await;
    let old = TestKey::generate();
    let new = TestKey::generate();
    let token = create_token(&db, "writer", "sessions:write");
    let replica = Server::start_with(&db, &old, &[("KEY_REFRESH_SECS", "1")]);
    let api = replica.client().with_token(&token);
    assert_eq!(put(&api, "u1"), 201);

    // The data keys move to a master key this replica does not hold, then
    // a rotation makes a primary it cannot unwrap and retires its primary.
    run_ok(
        bin()
            .args(["rotate-master", "--new-key-env", "NEW_KEY"])
            .env("DATABASE_URL", &db.url)
            .env("MASTER_KEY", old.base64())
            .env("NEW_KEY", new.base64()),
    );
    run_ok(
        bin()
            .args(["rotate", "--grace-ms", "0"])
            .env("DATABASE_URL", &db.url)
            .env("MASTER_KEY", new.base64()),
    );
    // Refused by the database at once, and the reload cannot help.
    let r = api.post_json(
        "/api/v1/sessions",
        &json!({ "user_id": "u2", "api_id": 1, "api_hash": HASH }),
    );
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    // Once its ring is stale (no successful refresh for 3 periods) it does
    // not even try.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replica.logs().contains("until a reload succeeds") {
        assert!(Instant::now() < deadline, "{}", replica.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = api.post_json(
        "/api/v1/sessions",
        &json!({ "user_id": "u1", "api_id": 2, "api_hash": HASH }),
    );
    assert_eq!(
        r.status,
        503,
        "{} {}",
        String::from_utf8_lossy(&r.body),
        replica.logs()
    );
    assert!(r.json()["error"].as_str().unwrap().contains("key ring"));
    assert_eq!(rows_under_retired_keys(&db).await, 0);
    every_row_readable(&db, &new, &["u1"]);
}

/// A server whose keys do not change keeps encrypting: a reload that finds
/// the same key rows (and so unwraps nothing) still counts as a reload.
/// Before, a quiet server went "stale" after 3 refresh periods and answered
/// every write 503 `key_ring_stale` (schemathesis found it after 30 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_server_with_unchanged_keys_never_goes_stale() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let token = create_token(&db, "writer", "sessions:write");
    let server = Server::start_with(&db, &key, &[("KEY_REFRESH_SECS", "1")]);
    let api = server.client().with_token(&token);
    assert_eq!(put(&api, "before"), 201);
    // Five refresh periods, more than the 3 after which a ring not reloaded
    // counts as stale.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(
        put(&api, "after"),
        201,
        "a ring with unchanged keys is current"
    );
}
