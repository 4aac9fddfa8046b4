//! `session put|get|list|deactivate`, `import-env` and `stats` as an operator
//! runs them against a real database.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{TestDb, TestKey, bin_for};
use serde_json::Value;
use vibee_sessions::db::stats;

const HASH: &str = "0123456789abcdef0123456789abcdef";
fn run(mut cmd: Command, stdin: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn count_rows(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM user_sessions", &[])
        .await
        .unwrap()
        .get(0)
}

fn put(db: &TestDb, key: &TestKey, args: &[&str], secrets: &str) -> Output {
    let mut cmd = bin_for(db, key);
    cmd.args(["session", "put", "--secrets-stdin"]).args(args);
    run(cmd, secrets)
}

#[tokio::test(flavor = "multi_thread")]
async fn session_put_get_list_deactivate_round_trip() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let secrets = format!("api_hash={HASH}\nphone=+15551234567\nsession_data=bXRwcm90bw==\n");
    let o = put(
        &db,
        &key,
        &[
            "--user-id",
            "u1",
            "--api-id",
            "42",
            "--session-id",
            "s1",
            "--authorized",
            "--target-chats",
            "[1, \"@chan\"]",
        ],
        &secrets,
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).starts_with("created session of user_id u1 (session_id s1"),
        "{}",
        out(&o)
    );
    assert!(!out(&o).contains(HASH) && !err(&o).contains(HASH));

    let o = put(
        &db,
        &key,
        &["--user-id", "u1", "--api-id", "43"],
        &format!("api_hash={HASH}"),
    );
    assert!(
        out(&o).starts_with("updated session of user_id u1 (session_id s1"),
        "{}",
        out(&o)
    );

    // Metadata only without --show-secrets, and no master key needed for it.
    let mut cmd = bin_for(&db, &key);
    cmd.env_remove("MASTER_KEY")
        .args(["session", "get", "u1", "--json"]);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["api_id"], 43);
    assert_eq!(doc["is_authorized"], true);
    assert_eq!(doc["has_phone"], true, "phone kept by the update");
    assert!(doc.get("api_hash").is_none());

    let o = bin_for(&db, &key)
        .args(["session", "get", "u1", "--json", "--show-secrets"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["api_hash"], HASH);
    assert_eq!(doc["phone"], "+15551234567");
    assert_eq!(doc["session_data"], "bXRwcm90bw==");
    let actor: String = db
        .client()
        .await
        .query_one(
            "SELECT actor FROM session_activity WHERE activity_type = 'credentials_read'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, "cli", "the read is audited");

    put(
        &db,
        &key,
        &["--user-id", "u2", "--api-id", "7"],
        &format!("api_hash={HASH}"),
    );
    let o = bin_for(&db, &key)
        .args(["session", "list", "--json"])
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(list.len(), 2);
    let o = bin_for(&db, &key)
        .args(["session", "list", "--json", "--limit", "1"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&out(&o)).unwrap().len(),
        1
    );

    let o = bin_for(&db, &key)
        .args(["session", "deactivate", "s1"])
        .output()
        .unwrap();
    assert!(out(&o).contains("deactivated session s1"), "{}", err(&o));
    let o = bin_for(&db, &key)
        .args(["session", "list"])
        .output()
        .unwrap();
    assert!(
        !out(&o).contains("u1") && out(&o).contains("u2"),
        "{}",
        out(&o)
    );
    let o = bin_for(&db, &key)
        .args(["session", "list", "--all", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&out(&o)).unwrap().len(),
        2
    );

    // A running agent's lease: new credentials (u2) and the purge (s1,
    // deactivated) wait for it: exit 13.
    db.client()
        .await
        .execute(
            "INSERT INTO session_leases (session_id, holder, fence, expires_at) \
             SELECT session_id, 'agent-host', nextval('session_lease_fence'), \
                    now() + interval '1 hour' FROM user_sessions",
            &[],
        )
        .await
        .unwrap();
    let other = format!("api_hash={}\n", "f".repeat(32));
    let o = put(&db, &key, &["--user-id", "u2", "--api-id", "7"], &other);
    assert_eq!(o.status.code(), Some(13), "{}", err(&o));
    assert!(
        err(&o).contains("a live lease holds this session"),
        "{}",
        err(&o)
    );
    let o = bin_for(&db, &key)
        .args(["session", "deactivate", "s1", "--purge"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(13), "{}", err(&o));
    assert!(err(&o).contains("leased by agent-host"), "{}", err(&o));
    db.client()
        .await
        .execute("DELETE FROM session_leases", &[])
        .await
        .unwrap();
    let o = bin_for(&db, &key)
        .args(["session", "deactivate", "s1", "--purge"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(count_rows(&db).await, 1);
    let o = bin_for(&db, &key)
        .args(["session", "deactivate", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10));
    assert!(err(&o).contains("no session with session_id nope"));
    let o = bin_for(&db, &key)
        .args(["session", "get", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn session_put_names_the_invalid_field_and_writes_nothing() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let bad_hash = "not-a-hash-but-a-secret-value!!!";
    let o = put(
        &db,
        &key,
        &["--user-id", "u1", "--api-id", "42"],
        &format!("api_hash={bad_hash}"),
    );
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    assert!(err(&o).contains("invalid api_hash"), "{}", err(&o));
    assert!(!err(&o).contains(bad_hash));

    let o = put(
        &db,
        &key,
        &["--user-id", "u1", "--api-id", "42"],
        &format!("api_hash={HASH}\nphone=12345\n"),
    );
    assert_eq!(o.status.code(), Some(65));
    assert!(err(&o).contains("invalid phone"));
    let o = put(
        &db,
        &key,
        &["--user-id", "u1", "--api-id", "42"],
        &format!("api_hash={HASH}\napi_hsah=x\n"),
    );
    assert!(err(&o).contains("unknown key api_hsah"), "{}", err(&o));
    let o = put(
        &db,
        &key,
        &["--user-id", "a/b", "--api-id", "42"],
        &format!("api_hash={HASH}"),
    );
    assert!(err(&o).contains("invalid user_id"), "{}", err(&o));
    assert_eq!(count_rows(&db).await, 0);

    // Secrets from a file work the same way.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.env");
    std::fs::write(&file, format!("# the client's secrets\napi_hash={HASH}\n")).unwrap();
    // A secrets file is its owner's alone (0600), as `umask 077` makes it.
    std::fs::set_permissions(
        &file,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let o = bin_for(&db, &key)
        .args([
            "session",
            "put",
            "--user-id",
            "u1",
            "--api-id",
            "42",
            "--secrets-file",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
}

fn import(db: &TestDb, key: &TestKey, env_text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.env");
    std::fs::write(&file, env_text).unwrap();
    bin_for(db, key)
        .args(["import-env", "--env-file"])
        .arg(&file)
        .output()
        .unwrap()
}

const LEGACY: &str = "TELEGRAM_SESSION_ID=legacy-session\nTELEGRAM_API_ID=12345\n\
    TELEGRAM_API_HASH=0123456789abcdef0123456789abcdef\nUSER_ID=144022504\n\
    TELEGRAM_PHONE=+15551234567\nTELEGRAM_USERNAME=alice\n";

#[tokio::test(flavor = "multi_thread")]
async fn import_env_twice_gives_one_row_and_never_prints_secrets() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let o = import(&db, &key, LEGACY);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).starts_with("created: user_id 144022504 session_id legacy-session"),
        "{}",
        out(&o)
    );
    let o = import(&db, &key, LEGACY);
    assert!(
        out(&o).starts_with("updated: user_id 144022504"),
        "{}",
        out(&o)
    );
    for text in [out(&o), err(&o)] {
        assert!(!text.contains(HASH) && !text.contains("+15551234567"));
    }
    assert_eq!(count_rows(&db).await, 1);

    let o = bin_for(&db, &key)
        .args(["session", "get", "144022504", "--json", "--show-secrets"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["api_hash"], HASH);
    assert_eq!(doc["phone"], "+15551234567");
    assert_eq!(doc["username"], "alice");
    assert_eq!(doc["api_id"], 12345);

    // From the process environment, without USER_ID: the session id is the user id.
    let mut cmd = bin_for(&db, &key);
    cmd.arg("import-env")
        .env("TELEGRAM_SESSION_ID", "env-client")
        .env("TELEGRAM_API_ID", "777")
        .env("TELEGRAM_API_HASH", HASH)
        .env_remove("USER_ID");
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("user_id env-client session_id env-client"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("USER_ID not set"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_env_files_are_named_and_change_nothing() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let cases = [
        (
            format!("{LEGACY}TELEGRAM_PHONE =\"+1555 'unterminated\n"),
            "line 7",
        ),
        (
            LEGACY.replace("TELEGRAM_API_HASH=0123456789abcdef0123456789abcdef\n", ""),
            "TELEGRAM_API_HASH is not set",
        ),
        (
            LEGACY.replace("TELEGRAM_API_ID=12345", "TELEGRAM_API_ID=12a45"),
            "invalid TELEGRAM_API_ID",
        ),
        (
            LEGACY.replace("0123456789abcdef0123456789abcdef", "s3cr3t-but-wrong"),
            "invalid TELEGRAM_API_HASH",
        ),
        (
            LEGACY.replace("+15551234567", "555-1234"),
            "invalid TELEGRAM_PHONE",
        ),
        (
            LEGACY.replace("USER_ID=144022504", "USER_ID=../x"),
            "invalid USER_ID",
        ),
    ];
    for (text, expected) in cases {
        let o = import(&db, &key, &text);
        assert_eq!(o.status.code(), Some(65), "{expected}: {}", err(&o));
        assert!(err(&o).contains(expected), "{expected}: {}", err(&o));
        assert!(
            err(&o).contains("legacy.env"),
            "the file is named: {}",
            err(&o)
        );
        assert!(!err(&o).contains("s3cr3t") && !err(&o).contains("555-1234"));
    }
    assert_eq!(count_rows(&db).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_counts_sessions_and_keys() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let secrets = format!("api_hash={HASH}");
    put(
        &db,
        &key,
        &["--user-id", "a", "--api-id", "1", "--authorized"],
        &secrets,
    );
    put(&db, &key, &["--user-id", "b", "--api-id", "1"], &secrets);
    put(
        &db,
        &key,
        &["--user-id", "c", "--api-id", "1", "--session-id", "sc"],
        &secrets,
    );
    bin_for(&db, &key)
        .args(["session", "deactivate", "sc"])
        .output()
        .unwrap();
    let o = bin_for(&db, &key)
        .args(["boot", "--user-id", "a"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));

    let s = stats::stats(&mut db.conn().await).await.unwrap();
    assert_eq!(
        (s.sessions.total, s.sessions.active, s.sessions.inactive),
        (3, 2, 1)
    );
    assert_eq!((s.sessions.authorized, s.sessions.unauthorized), (1, 1));
    assert!(s.last_seen_at.is_some(), "the boot stamped last_seen_at");
    assert!(s.last_activity_at >= s.last_seen_at);
    assert_eq!(s.sessions_per_data_key.len(), 1);
    assert_eq!(s.sessions_per_data_key[0].sessions, 3);

    let o = bin_for(&db, &key)
        .args(["stats", "--json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["sessions"]["active"], 2);
    assert_eq!(doc["sessions"]["authorized"], 1);
    let o = bin_for(&db, &key).args(["stats"]).output().unwrap();
    assert!(out(&o).contains("3 (2 active, 1 inactive)"), "{}", out(&o));
}
