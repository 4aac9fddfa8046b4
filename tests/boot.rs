//! `vibee-sessions boot`: every mode, format and source, through a real shell
//! and a real `exec`, against a real database and a real `vibee-sessions serve`.

mod common;

use base64::Engine;
use std::process::{Command, Output};

use common::server::{HASH, Server, create_token};
use common::{TestDb, TestKey, TestStore, bin, bin_for, open_vault};
use secrecy::{SecretSlice, SecretString};
use serde_json::{Value, json};
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::sessions::{self, SessionInput};

const CLOSED_DB: &str = "postgres://nobody@127.0.0.1:1/none?sslmode=disable";
const BIN: &str = env!("CARGO_BIN_EXE_vibee-sessions");
/// A value no shell may interpret: quotes, spaces, a newline, substitutions.
const NASTY: &str = "it's \"quoted\" $(touch pwned) `touch pwned2` $HOME \\ a\nb";

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
    let mut cmd = bin_for(&db, &key);
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

    let o = bin_for(&db, &key)
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
    let o = bin_for(&db, &key).args(["boot", "--all"]).output().unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", err(&o));
    assert!(err(&o).contains("no active sessions"));
    assert!(out(&o).is_empty());

    seed(&db, &key, &["u1"]).await;
    let o = bin_for(&db, &key)
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
    sessions::deactivate(
        &mut db.conn().await,
        &AuditContext::cli(),
        &session_id,
        None,
    )
    .await
    .unwrap();
    let o = bin_for(&db, &key)
        .env("USER_ID", "u1")
        .arg("boot")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(11));
    assert!(err(&o).contains("deactivated"), "{}", err(&o));
    let o = bin_for(&db, &key)
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

    let o = bin_for(&db, &key)
        .args(["boot", "--all", "--format", "env"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin_for(&db, &key)
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
    sessions::deactivate(&mut db.conn().await, &AuditContext::cli(), &sid, None)
        .await
        .unwrap();
    let o = bin_for(&db, &key)
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
    let o = bin_for(&db, &key)
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
    let TestStore {
        db,
        key,
        vault,
        mut conn,
    } = TestStore::new().await;
    for i in 0..120 {
        let mut t = input(&format!("t{i:03}"));
        t.session_data = Some(SecretSlice::from(vec![7u8; 1024]));
        sessions::upsert(&mut conn, &vault, &AuditContext::cli(), &t)
            .await
            .unwrap();
    }
    let o = bin_for(&db, &key)
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

/// A real `vibee-sessions serve` on the test database, and a token for it.
fn serve(db: &TestDb, key: &TestKey) -> Server {
    Server::start(db, key)
}

/// An agent host: a token and an API URL, no master key, no reachable database.
fn api_bin(server: &Server, token: &str) -> Command {
    let mut cmd = bin();
    cmd.env("DATABASE_URL", CLOSED_DB)
        .env("VIBEE_TOKEN", token)
        .arg("boot")
        .args(["--api-url", &server.base]);
    cmd
}

async fn last_seen_and_loads(db: &TestDb, user_id: &str) -> (bool, i64, Vec<String>) {
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT last_seen_at IS NOT NULL FROM user_sessions WHERE user_id = $1",
            &[&user_id],
        )
        .await
        .unwrap();
    let actors: Vec<String> = client
        .query(
            "SELECT actor FROM session_activity WHERE user_id = $1 AND activity_type = 'boot_load' \
             ORDER BY id",
            &[&user_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (row.get(0), actors.len() as i64, actors)
}

/// A new user's command from the docs, with a read-only token: it works,
/// stamps `last_seen_at` server-side and is audited as a boot load under the
/// token's name; the token can still write nothing.
#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_from_the_api_with_a_read_only_token() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["555"]).await;
    let server = serve(&db, &key);
    let read = create_token(&db, "agent-read", "sessions:read");
    assert_eq!(last_seen_and_loads(&db, "555").await.1, 0);
    let o = api_bin(&server, &read)
        .args(["--user-id", "555", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc[0]["api_hash"], HASH);
    assert_eq!(doc[0]["phone"], "+15551234567");
    assert_eq!(
        doc[0]["session_data"],
        base64::engine::general_purpose::STANDARD.encode(b"mtproto\0blob")
    );
    let (seen, loads, actors) = last_seen_and_loads(&db, "555").await;
    assert!(seen, "last_seen_at is stamped by the server");
    assert_eq!((loads, actors[0].as_str()), (1, "agent-read"));
    // The same token cannot write.
    let write = server
        .client()
        .with_token(&read)
        .patch_json("/api/v1/sessions/555", &json!({"last_seen_at": null}));
    assert_eq!(write.status, 403);

    // Through eval, with USER_ID from the environment.
    let sh_args = format!("--api-url '{}'", server.base);
    let mut env_cmd = bin();
    env_cmd.env("VIBEE_TOKEN", &read).env("USER_ID", "555");
    let (o, v) = eval_in_shell(
        env_cmd,
        &sh_args,
        &[
            "TELEGRAM_API_HASH",
            "VIBEE_DIGITAL_TWIN_ENABLED",
            "TELEGRAM_PHONE",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(v[0], HASH);
    assert_eq!(v[1], "true");
    assert_eq!(v[2], "+15551234567");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_failures_map_to_the_same_exit_codes() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["on", "off"]).await;
    let server = serve(&db, &key);
    let client = db.client().await;
    client
        .execute(
            "UPDATE user_sessions SET is_active = false WHERE user_id = 'off'",
            &[],
        )
        .await
        .unwrap();
    let read = create_token(&db, "agent-read", "sessions:read");
    let list_only = create_token(&db, "lister", "sessions:list");

    let o = api_bin(&server, &read)
        .args(["--user-id", "ghost"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10), "{}", err(&o));
    let o = api_bin(&server, &read)
        .args(["--user-id", "off"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(11), "{}", err(&o));
    // Re-importing does not turn it on again (docs/SECURITY.md): the message
    // names the one way that does.
    assert!(err(&o).contains("session reactivate"), "{}", err(&o));
    assert!(
        !last_seen_and_loads(&db, "off").await.0,
        "an inactive session is not stamped"
    );
    // A token without the scope: the message names the scope it lacks and
    // the least-privilege token to use, never the token.
    let o = api_bin(&server, &list_only)
        .args(["--user-id", "on"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("sessions:read"), "{}", err(&o));
    assert!(err(&o).contains("sessions:boot"), "{}", err(&o));
    assert!(!err(&o).contains("sessions:write"), "{}", err(&o));
    assert!(!err(&o).contains(&list_only));
    // --all with a read token: it cannot list; told so by name.
    let o = api_bin(&server, &read).arg("--all").output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(
        err(&o).contains("sessions:list") && err(&o).contains("sessions:boot"),
        "{}",
        err(&o)
    );
    // An unknown token.
    let o = api_bin(&server, "vbs_not_a_token")
        .args(["--user-id", "on"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("401"), "{}", err(&o));
    // --all with nothing active.
    client
        .execute("UPDATE user_sessions SET is_active = false", &[])
        .await
        .unwrap();
    let boot = create_token(&db, "agent-boot", "sessions:boot");
    let o = api_bin(&server, &boot).arg("--all").output().unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", err(&o));
    let o = api_bin(&server, &read)
        .env_remove("VIBEE_TOKEN")
        .args(["--user-id", "on"])
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

/// `--all --exec` through the API with the least-privilege token: the loader
/// supervises the agent and leases every tenant over REST with `sessions:boot`,
/// which can write nothing.
#[tokio::test(flavor = "multi_thread")]
async fn all_tenants_from_the_api_into_exec_with_a_boot_token() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["u1", "u2", "u3", "off"]).await;
    db.client()
        .await
        .execute(
            "UPDATE user_sessions SET is_active = false WHERE user_id = 'off'",
            &[],
        )
        .await
        .unwrap();
    let server = common::server::Server::start(&db, &key);
    let boot = create_token(&db, "agent-host", "sessions:boot");
    let o = bin()
        .env("VIBEE_API_URL", &server.base)
        .env("VIBEE_TOKEN", &boot)
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
    let loads: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM session_activity WHERE activity_type = 'boot_load' AND actor = 'agent-host'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(loads, 3, "each load audited under the token's name");

    let http = server.client().with_token(&boot);
    for (method, path) in [
        ("PATCH", "/api/v1/sessions/s-u2"),
        ("DELETE", "/api/v1/sessions/s-u2"),
        ("GET", "/api/v1/sessions/s-u2/activity"),
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/sessions?include_inactive=true"),
    ] {
        let body =
            (method == "PATCH").then_some(("application/json", &b"{\"username\":\"x\"}"[..]));
        let r = http.send(method, path, body, &[]);
        assert_eq!(
            r.status,
            403,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = http.post_json(
        "/api/v1/sessions",
        &json!({"user_id": "evil", "api_id": 1, "api_hash": HASH}),
    );
    assert_eq!(r.status, 403);
}

/// The snippets of docs/MULTI_TENANT_SETUP.md that read and close
/// `VIBEE_SESSIONS_FD`, as written: after them the agent holds the tenants
/// and no longer holds the descriptor (so nothing it starts inherits it).
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_memory_file_snippets_read_and_close_it() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/MULTI_TENANT_SETUP.md"),
    )
    .unwrap();
    let section = &doc[doc.find("### Read the memory file").expect("the section")..];
    let block = |fence: &str| {
        let start = section.find(fence).unwrap() + fence.len();
        section[start..][..section[start..].find("```").unwrap()].to_owned()
    };
    let (python, shell) = (block("```python\n"), block("```sh\n"));
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, &["a", "b"]).await;
    let python_agent = format!(
        "{python}\nfd_was = {fd}\ntry:\n    os.fstat(fd_was)\n    print('still open')\nexcept OSError:\n    \
         print('closed', len(tenants), 'VIBEE_SESSIONS_FD' in os.environ)\n",
        fd = "fd"
    );
    let o = bin_for(&db, &key)
        .args([
            "boot",
            "--all",
            "--exec",
            "--",
            "python3",
            "-c",
            &python_agent,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).trim(), "closed 2 False");
    let shell_agent = format!(
        "fd=$VIBEE_SESSIONS_FD\n{shell}\nif [ -e /proc/$$/fd/$fd ]; then echo still open; \
         else printf 'closed %s\\n' \"$(printf '%s' \"$tenants\" | grep -o '\"user_id\"' | wc -l)\"; fi\n"
    );
    let o = bin_for(&db, &key)
        .args(["boot", "--all", "--exec", "--", "bash", "-c", &shell_agent])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).trim(), "closed 2");
}
