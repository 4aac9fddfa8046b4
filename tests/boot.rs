//! `vibee-sessions boot`: every mode, format and source, through a real shell
//! and a real `exec`, against a real database and a canned REST API.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::{TestDb, TestKey, open_vault};
use secrecy::{SecretSlice, SecretString};
use serde_json::{Value, json};
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::sessions::{self, SessionInput};

const HASH: &str = "0123456789abcdef0123456789abcdef";
const CLOSED_DB: &str = "postgres://nobody@127.0.0.1:1/none?sslmode=disable";
const BIN: &str = env!("CARGO_BIN_EXE_vibee-sessions");
/// A value no shell may interpret: quotes, spaces, a newline, substitutions.
const NASTY: &str = "it's \"quoted\" $(touch pwned) `touch pwned2` $HOME \\ a\nb";

/// The binary with a clean environment: nothing from the developer's shell.
fn bin() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .current_dir(tempfile::tempdir().unwrap().keep());
    cmd
}

fn db_bin(db: &TestDb, key: &TestKey) -> Command {
    let mut cmd = bin();
    cmd.env("DATABASE_URL", &db.url)
        .env("MASTER_KEY", key.base64());
    cmd
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `boot ARGS` inside `sh -c 'eval "$(boot ...)"; ...'` and returns the
/// named variables as the shell sees them afterwards.
fn eval_in_shell(mut cmd: Command, boot_args: &str, names: &[&str]) -> (Output, Vec<String>) {
    let prints: String = names.iter().map(|n| format!(" \"${n}\"")).collect();
    let script = format!(
        "out=$(\"$BOOT_BIN\" boot {boot_args}) || exit $?; eval \"$out\"; printf '%s\\0'{prints}"
    );
    cmd.env("BOOT_BIN", BIN);
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(script);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    let o = sh.output().unwrap();
    let values = out(&o)
        .split('\0')
        .filter(|_| o.status.success())
        .map(str::to_owned)
        .collect();
    (o, values)
}

#[test]
fn legacy_mode_needs_no_database_and_survives_eval() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .env("DATABASE_URL", CLOSED_DB)
        .env("TELEGRAM_SESSION_ID", NASTY)
        .env("TELEGRAM_API_ID", "12345")
        .env("TELEGRAM_API_HASH", format!("h'a'sh{NASTY}"))
        .env("TELEGRAM_PHONE", "+1 555 'x'");
    let (o, v) = eval_in_shell(
        cmd,
        "",
        &[
            "TELEGRAM_SESSION_ID",
            "TELEGRAM_API_ID",
            "TELEGRAM_API_HASH",
            "VIBEE_USER_ID",
            "VIBEE_TARGET_CHATS",
            "VIBEE_AUTO_REPLY_ENABLED",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(v[0], NASTY);
    assert_eq!(v[1], "12345");
    assert_eq!(v[2], format!("h'a'sh{NASTY}"));
    assert_eq!(v[3], NASTY, "a legacy client's user id is its session id");
    assert_eq!(v[4], "[]");
    assert_eq!(v[5], "false");
    assert!(!dir.path().join("pwned").exists() && !dir.path().join("pwned2").exists());

    // JSON too, and still no database.
    let o = bin()
        .env("DATABASE_URL", CLOSED_DB)
        .env("TELEGRAM_SESSION_ID", "s")
        .env("TELEGRAM_API_ID", "1")
        .env("TELEGRAM_API_HASH", "h")
        .args(["boot", "--format", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc[0]["api_hash"], "h");
    assert_eq!(doc[0]["api_id"], 1);
}

#[test]
fn legacy_mode_names_what_is_missing_or_wrong() {
    let o = bin()
        .env("TELEGRAM_SESSION_ID", "s")
        .env("TELEGRAM_API_ID", "1")
        .arg("boot")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        err(&o).contains("TELEGRAM_API_HASH is not set"),
        "{}",
        err(&o)
    );
    let o = bin()
        .env("TELEGRAM_SESSION_ID", "s")
        .env("TELEGRAM_API_ID", "abc")
        .env("TELEGRAM_API_HASH", "supersecret")
        .arg("boot")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(65));
    assert!(err(&o).contains("TELEGRAM_API_ID must be a positive integer"));
    assert!(!err(&o).contains("supersecret"));
}

fn input(user_id: &str) -> SessionInput {
    SessionInput {
        user_id: user_id.to_owned(),
        api_id: 4242,
        api_hash: SecretString::from(HASH),
        phone: Some(SecretString::from("+15551234567")),
        username: Some(NASTY.replace('\n', " ")),
        session_data: Some(SecretSlice::from(b"mtproto\0blob".to_vec())),
        digital_twin_enabled: Some(true),
        target_chats: Some(json!([-100123, NASTY.replace('\n', " "), "@chan"])),
        ..Default::default()
    }
}

async fn seed(db: &TestDb, key: &TestKey, users: &[&str]) {
    let vault = open_vault(db, key).await;
    let mut conn = db.conn().await;
    for u in users {
        sessions::upsert(&mut conn, &vault, &AuditContext::cli(), &input(u))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_from_the_database_survives_eval_and_is_audited() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["u1"]).await;
    let mut cmd = db_bin(&db, &key);
    cmd.env("USER_ID", "u1");
    let (o, v) = eval_in_shell(
        cmd,
        "--format env",
        &[
            "TELEGRAM_API_HASH",
            "TELEGRAM_API_ID",
            "TELEGRAM_PHONE",
            "VIBEE_USER_ID",
            "VIBEE_TARGET_CHATS",
            "VIBEE_DIGITAL_TWIN_ENABLED",
            "TELEGRAM_SESSION_DATA",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(v[0], HASH);
    assert_eq!(v[1], "4242");
    assert_eq!(v[2], "+15551234567");
    assert_eq!(v[3], "u1");
    let chats: Value = serde_json::from_str(&v[4]).unwrap();
    assert_eq!(chats, json!([-100123, NASTY.replace('\n', " "), "@chan"]));
    assert_eq!(v[5], "true");
    assert_eq!(v[6], "bXRwcm90bwBibG9i");

    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT actor, details::text FROM session_activity WHERE activity_type = 'boot_load'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "cli");
    assert!(!row.get::<_, String>(1).contains(HASH));
    let seen: bool = client
        .query_one(
            "SELECT last_seen_at IS NOT NULL FROM user_sessions WHERE user_id = 'u1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(seen, "last_seen_at is stamped");

    let o = db_bin(&db, &key)
        .args(["boot", "--user-id", "u1", "--format", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), 1);
    assert_eq!(doc[0]["session_data"], "bXRwcm90bwBibG9i");
    assert_eq!(doc[0]["username"], NASTY.replace('\n', " "));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failure_has_its_own_exit_code() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let o = db_bin(&db, &key).args(["boot", "--all"]).output().unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", err(&o));
    assert!(err(&o).contains("no active sessions"));
    assert!(out(&o).is_empty());

    seed(&db, &key, &["u1"]).await;
    let o = db_bin(&db, &key)
        .args(["boot", "--user-id", "ghost"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10));
    assert!(
        err(&o).contains("no session for user_id ghost"),
        "{}",
        err(&o)
    );

    let session_id = sessions::get_meta(&mut db.conn().await, "u1")
        .await
        .unwrap()
        .session_id;
    sessions::deactivate(&mut db.conn().await, &AuditContext::cli(), &session_id)
        .await
        .unwrap();
    let o = db_bin(&db, &key)
        .env("USER_ID", "u1")
        .arg("boot")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(11));
    assert!(err(&o).contains("deactivated"), "{}", err(&o));
    let o = db_bin(&db, &key)
        .env("MULTI_TENANT", "true")
        .arg("boot")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(12),
        "MULTI_TENANT=true is --all: {}",
        err(&o)
    );

    let o = db_bin(&db, &key)
        .args(["boot", "--all", "--format", "env"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = db_bin(&db, &key)
        .env("MASTER_KEY", TestKey::generate().base64())
        .args(["boot", "--user-id", "u1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "a wrong master key: {}", err(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn all_active_tenants_as_json() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["a", "b", "c"]).await;
    let sid = sessions::get_meta(&mut db.conn().await, "b")
        .await
        .unwrap()
        .session_id;
    sessions::deactivate(&mut db.conn().await, &AuditContext::cli(), &sid)
        .await
        .unwrap();
    let o = db_bin(&db, &key)
        .env("MULTI_TENANT", "true")
        .env("USER_ID", "b")
        .arg("boot")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let doc: Vec<Value> = serde_json::from_str(&out(&o)).unwrap();
    let users: Vec<_> = doc.iter().map(|t| t["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, ["a", "c"]);
    assert_eq!(doc[0]["api_hash"], HASH);
    let loads: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM session_activity WHERE activity_type = 'boot_load'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(loads, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_hands_one_tenant_its_environment_and_nothing_else() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["u1"]).await;
    let o = db_bin(&db, &key)
        .env("VIBEE_TOKEN", "tok")
        .args([
            "boot",
            "--user-id",
            "u1",
            "--exec",
            "--",
            "sh",
            "-c",
            "env; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(7),
        "the agent replaced the loader: {}",
        err(&o)
    );
    let env = out(&o);
    assert!(
        env.contains(&format!("TELEGRAM_API_HASH={HASH}\n")),
        "{env}"
    );
    assert!(env.contains("TELEGRAM_API_ID=4242\n"));
    assert!(env.contains("VIBEE_USER_ID=u1\n"));
    for gone in [
        "MASTER_KEY=",
        "DATABASE_URL=",
        "VIBEE_TOKEN=",
        "VIBEE_SESSIONS_FD=",
    ] {
        assert!(!env.contains(gone), "{gone} reached the agent");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_hands_many_tenants_a_memory_file_past_a_pipe_buffer() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let vault = open_vault(&db, &key).await;
    let mut conn = db.conn().await;
    for i in 0..120 {
        let mut t = input(&format!("t{i:03}"));
        t.session_data = Some(SecretSlice::from(vec![7u8; 1024]));
        sessions::upsert(&mut conn, &vault, &AuditContext::cli(), &t)
            .await
            .unwrap();
    }
    let o = db_bin(&db, &key)
        .args(["boot", "--all", "--exec", "--", "sh", "-c"])
        .arg("printf '%s %s\\n' \"$VIBEE_SESSIONS_COUNT\" \"${MASTER_KEY:-none}\"; eval \"cat <&$VIBEE_SESSIONS_FD\"")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let (head, json_text) = text.split_once('\n').unwrap();
    assert_eq!(head, "120 none");
    assert!(json_text.len() > 128 * 1024, "{} bytes", json_text.len());
    let doc: Vec<Value> = serde_json::from_str(json_text).unwrap();
    assert_eq!(doc.len(), 120);
    assert_eq!(doc[119]["user_id"], "t119");
    assert_eq!(doc[0]["api_hash"], HASH);
}

/// method, path, authorization header, body.
type Request = (String, String, String, String);

/// A canned REST API: answers `(method, path)` with `(status, body)` and
/// records every request (method, path, authorization, body).
struct FakeApi {
    url: String,
    log: Arc<Mutex<Vec<Request>>>,
}

impl FakeApi {
    fn start(routes: Vec<(&str, &str, u16, Value)>) -> Self {
        let routes: HashMap<(String, String), (u16, String)> = routes
            .into_iter()
            .map(|(m, p, s, b)| ((m.to_owned(), p.to_owned()), (s, b.to_string())))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let stream = stream.into_std().unwrap();
                    stream.set_nonblocking(false).unwrap();
                    let (routes, seen) = (routes.clone(), Arc::clone(&seen));
                    tokio::task::spawn_blocking(move || answer(stream, &routes, &seen));
                }
            });
        });
        Self { url, log }
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn answer(
    mut stream: std::net::TcpStream,
    routes: &HashMap<(String, String), (u16, String)>,
    seen: &Mutex<Vec<Request>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap().split(' ');
    let (method, path) = (
        first.next().unwrap().to_owned(),
        first.next().unwrap().to_owned(),
    );
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    seen.lock()
        .unwrap()
        .push((method.clone(), path.clone(), header("authorization"), body));
    let (status, reply) = routes.get(&(method, path)).cloned().unwrap_or((
        404,
        json!({"error": "no such session", "code": "not_found"}).to_string(),
    ));
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn api_session(user_id: &str, active: bool) -> Value {
    json!({
        "id": "5f1c1d2e-0000-4000-8000-000000000001", "user_id": user_id,
        "session_id": format!("s-{user_id}"), "username": NASTY, "api_id": 99,
        "api_hash": HASH, "phone": null, "session_data": "AQID",
        "is_active": active, "is_authorized": true, "digital_twin_enabled": false,
        "auto_reply_enabled": true, "target_chats": [1, "it's"], "last_seen_at": null,
        "version": 3, "created_at": "2026-11-29T10:00:00Z", "updated_at": "2026-11-29T10:00:00Z",
        "data_key_id": 1, "has_phone": false, "has_session_data": true
    })
}

fn meta(user_id: &str) -> Value {
    let mut m = api_session(user_id, true);
    for secret in ["api_hash", "phone", "session_data"] {
        m.as_object_mut().unwrap().remove(secret);
    }
    m
}

/// An agent host: a token and an API URL, no master key, no reachable database.
fn api_bin(api: &FakeApi) -> Command {
    let mut cmd = bin();
    cmd.env("DATABASE_URL", CLOSED_DB)
        .env("VIBEE_TOKEN", "vs_read_token")
        .arg("boot")
        .args(["--api-url", &api.url]);
    cmd
}

#[test]
fn one_tenant_from_the_api_without_a_master_key() {
    let api = FakeApi::start(vec![
        (
            "GET",
            "/api/v1/users/u1/session",
            200,
            api_session("u1", true),
        ),
        ("PATCH", "/api/v1/sessions/s-u1", 200, meta("u1")),
    ]);
    let o = api_bin(&api)
        .args(["--user-id", "u1", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc[0]["api_hash"], HASH);
    assert_eq!(doc[0]["session_data"], "AQID");
    assert_eq!(doc[0]["phone"], Value::Null);
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        (reqs[0].0.as_str(), reqs[0].2.as_str()),
        ("GET", "Bearer vs_read_token")
    );
    assert_eq!(reqs[1].0, "PATCH");
    let patch: Value = serde_json::from_str(&reqs[1].3).unwrap();
    let stamp = patch["last_seen_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        "{stamp}"
    );

    let sh_args = format!("--api-url '{}'", api.url);
    let mut env_cmd = bin();
    env_cmd
        .env("VIBEE_TOKEN", "vs_read_token")
        .env("USER_ID", "u1");
    let (o, v) = eval_in_shell(
        env_cmd,
        &sh_args,
        &[
            "TELEGRAM_API_HASH",
            "VIBEE_TARGET_CHATS",
            "VIBEE_AUTO_REPLY_ENABLED",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(v[0], HASH);
    assert_eq!(v[1], r#"[1,"it's"]"#);
    assert_eq!(v[2], "true");
}

#[test]
fn api_failures_map_to_the_same_exit_codes() {
    let api = FakeApi::start(vec![
        (
            "GET",
            "/api/v1/users/off/session",
            200,
            api_session("off", false),
        ),
        (
            "GET",
            "/api/v1/users/denied/session",
            403,
            json!({"error": "token lacks scope sessions:read", "code": "forbidden"}),
        ),
        (
            "GET",
            "/api/v1/sessions?limit=500",
            200,
            json!({"sessions": [], "next_cursor": null}),
        ),
    ]);
    let o = api_bin(&api).args(["--user-id", "ghost"]).output().unwrap();
    assert_eq!(o.status.code(), Some(10), "{}", err(&o));
    let o = api_bin(&api).args(["--user-id", "off"]).output().unwrap();
    assert_eq!(o.status.code(), Some(11), "{}", err(&o));
    assert!(
        !api.requests().iter().any(|r| r.0 == "PATCH"),
        "an inactive session is not stamped"
    );
    let o = api_bin(&api)
        .args(["--user-id", "denied"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        err(&o).contains("token lacks scope sessions:read"),
        "{}",
        err(&o)
    );
    assert!(!err(&o).contains("vs_read_token"));
    let o = api_bin(&api).arg("--all").output().unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", err(&o));
    let o = api_bin(&api)
        .env_remove("VIBEE_TOKEN")
        .args(["--user-id", "u1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(err(&o).contains("VIBEE_TOKEN"));
    let o = bin()
        .env("VIBEE_TOKEN", "t")
        .args(["boot", "--user-id", "u1", "--api-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "an unreachable API: {}", err(&o));
}

/// `--all --exec` through the API: the loader supervises the agent and
/// leases every tenant over REST, so it needs the real server (issue 13).
#[tokio::test(flavor = "multi_thread")]
async fn all_tenants_from_the_api_page_by_page_into_exec() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["u1", "u2", "u3"]).await;
    let server = common::server::Server::start(&db, &key);
    let token = common::server::create_token(
        &db,
        "boot-host",
        "sessions:read,sessions:list,sessions:write",
    );
    let o = bin()
        .env("VIBEE_API_URL", &server.base)
        .env("VIBEE_TOKEN", &token)
        .env("MULTI_TENANT", "true")
        .args([
            "boot",
            "--exec",
            "--",
            "sh",
            "-c",
            "echo \"${VIBEE_TOKEN:-no token}\"; eval \"cat <&$VIBEE_SESSIONS_FD\"",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let (head, json_text) = text.split_once('\n').unwrap();
    assert_eq!(head, "no token");
    let doc: Vec<Value> = serde_json::from_str(json_text).unwrap();
    let users: Vec<_> = doc.iter().map(|t| t["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, ["u1", "u2", "u3"]);
    assert!(doc.iter().all(|t| t["lease_fence"].as_i64().unwrap() > 0));
    let stamped: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM user_sessions WHERE last_seen_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stamped, 3);
}
