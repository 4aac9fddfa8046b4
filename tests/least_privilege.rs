//! `serve`, `boot` and `rotate` run as a role that owns nothing and holds
//! only what `vibee-sessions grant` gives it; the schema's owner (here the
//! test's postgres user) migrated it. That role cannot drop or alter a
//! table, rewrite the audit trail, create anything, or read a table it was
//! not granted.

mod common;

use std::process::{Command, Output};

use base64::Engine;
use common::server::Server;
use common::{TestDb, TestKey, admin_url, url_with_db};
use serde_json::json;

const HASH: &str = "0123456789abcdef0123456789abcdef";

/// A login role of the test's own, dropped on drop (after the database,
/// which is declared after it and so dropped first).
struct Role(String);

impl Role {
    async fn create() -> Self {
        let name = format!("vs_test_role_{}", uuid::Uuid::new_v4().simple());
        admin()
            .await
            .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
            .await
            .unwrap();
        Self(name)
    }

    /// `db`'s URL, logging in as this role.
    fn url(&self, db: &TestDb) -> String {
        let url = url_with_db(&admin_url(), &db.name);
        let scheme_end = url.find("://").unwrap() + 3;
        let rest = &url[scheme_end..];
        let host = rest.find('@').map_or(rest, |i| &rest[i + 1..]);
        format!("{}{}@{host}", &url[..scheme_end], self.0)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let _ = admin()
                        .await
                        .batch_execute(&format!("DROP ROLE IF EXISTS {name}"))
                        .await;
                });
        })
        .join();
    }
}

async fn admin() -> tokio_postgres::Client {
    vibee_sessions::db::DatabaseTarget::parse(&admin_url())
        .unwrap()
        .connect_client()
        .await
        .unwrap()
}

fn cli(url: &str, key: &TestKey, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("MASTER_KEY", key.base64())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_boot_and_rotate_run_as_a_role_with_only_its_grants() {
    let role = Role::create().await;
    let db = TestDb::new().await;
    let key = TestKey::generate();
    // The owner starts the service once (the first data key), then grants.
    let first = Server::start(&db, &key);
    drop(first);
    ok(cli(&db.url, &key, &["grant", &role.0]));
    let app = role.url(&db);

    let server = Server::start_with(
        &db,
        &key,
        &[("DATABASE_URL", &app), ("DATABASE_DIRECT_URL", &app)],
    );
    let token = ok(cli(
        &app,
        &key,
        &["token", "create", "--name", "bridge", "--scope", "admin"],
    ));
    let api = server.client().with_token(token.trim());
    let body = json!({
        "user_id": "tenant",
        "api_id": 1,
        "api_hash": HASH,
        "session_data": base64::engine::general_purpose::STANDARD.encode(b"blob"),
    });
    let created = api.post_json("/api/v1/sessions", &body);
    assert_eq!(created.status, 201, "{}", server.logs());
    let sid = created.json()["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get("/api/v1/users/tenant/session").json()["api_hash"],
        HASH
    );
    let lease = api.post_json(
        &format!("/api/v1/sessions/{sid}/lease"),
        &json!({"holder": "h1", "ttl_seconds": 30}),
    );
    assert_eq!(
        lease.status,
        200,
        "{}",
        String::from_utf8_lossy(&lease.body)
    );
    let fence = lease.json()["fence"].as_i64().unwrap();
    assert_eq!(
        api.delete(&format!(
            "/api/v1/sessions/{sid}/lease?holder=h1&fence={fence}"
        ))
        .status,
        204
    );

    // boot as the role: a credentials read, and a supervised run holding the lease.
    let printed = ok(cli(
        &app,
        &key,
        &["boot", "--user-id", "tenant", "--format", "json"],
    ));
    assert!(printed.contains(HASH), "{printed}");
    ok(cli(
        &app,
        &key,
        &["boot", "--user-id", "tenant", "--exec", "--", "true"],
    ));

    // rotate as the role (the session lock on DATABASE_DIRECT_URL, re-sealing).
    ok(cli(&app, &key, &["rotate", "--grace-ms", "0"]));
    assert_eq!(
        api.get("/api/v1/users/tenant/session").json()["api_hash"],
        HASH
    );
    let trail = api.get("/api/v1/users/tenant/activity").json();
    assert!(trail["activity"].as_array().unwrap().len() >= 2, "{trail}");

    // What the role may not do.
    let owner = db.client().await;
    owner
        .batch_execute("CREATE TABLE owner_only (secret text); INSERT INTO owner_only VALUES ('x')")
        .await
        .unwrap();
    let as_role = vibee_sessions::db::DatabaseTarget::parse(&app)
        .unwrap()
        .connect_client()
        .await
        .unwrap();
    for (sql, expected) in [
        ("DROP TABLE user_sessions", "must be owner"),
        ("ALTER TABLE api_tokens ADD COLUMN x int", "must be owner"),
        ("TRUNCATE api_tokens", "permission denied"),
        (
            "UPDATE session_activity SET actor = 'someone else'",
            "permission denied",
        ),
        ("DELETE FROM session_activity", "permission denied"),
        ("CREATE TABLE mine (x int)", "permission denied"),
        ("SELECT * FROM owner_only", "permission denied"),
        (
            "DELETE FROM __diesel_schema_migrations",
            "permission denied",
        ),
    ] {
        let err = as_role
            .batch_execute(sql)
            .await
            .expect_err(&format!("the role could run {sql}"));
        let text = err
            .as_db_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(text.contains(expected), "{sql}: {text}");
    }
    // The role's own defaults bound the request path whatever the pooler drops.
    let row = as_role
        .query_one(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("30s".into(), "5s".into())
    );
    drop(as_role);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grants_name_every_table_the_migrations_create() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let unlisted = vibee_sessions::db::grants::unlisted_tables(&mut conn)
        .await
        .unwrap();
    assert!(
        unlisted.is_empty(),
        "tables without a grant in src/db/grants.rs: {unlisted:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_refuses_a_bad_role_name_and_prints_its_sql() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let out = cli(&db.url, &key, &["grant", "app; DROP TABLE user_sessions"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a role name"));
    let sql = ok(cli(&db.url, &key, &["grant", "vibee_app", "--print"]));
    assert!(
        sql.contains("GRANT SELECT, INSERT ON session_activity TO \"vibee_app\";"),
        "{sql}"
    );
    assert!(
        !sql.contains("TRUNCATE") && !sql.contains("ALL PRIVILEGES"),
        "{sql}"
    );
}
