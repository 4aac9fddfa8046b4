//! KEY=VALUE files (`import-env --env-file`, `session put --secrets-*`, `.env`)
//! are read literally: nothing in them is expanded from the operator's own
//! environment. `$` outside single quotes is refused by name; inside single
//! quotes it is kept as written. A full `pg_dump` never holds the master key,
//! the database URL or the token the operator's shell had.

mod common;

use common::server::HASH;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{TestDb, TestKey, bin_for};

const TOKEN: &str = "vbs_operator_token_that_must_not_leak_0123456789";

/// The binary as an operator's shell runs it: MASTER_KEY, DATABASE_URL and
/// VIBEE_TOKEN all set in its environment.
fn operator(db: &TestDb, key: &TestKey) -> Command {
    let mut cmd = bin_for(db, key);
    cmd.env("VIBEE_TOKEN", TOKEN);
    cmd
}

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

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn dump(db: &TestDb) -> String {
    let o = Command::new("pg_dump")
        .arg("--no-owner")
        .arg(format!("--dbname={}", db.url))
        .output()
        .expect("pg_dump runs (install postgresql-client)");
    assert!(o.status.success(), "{}", err(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn assert_no_leak(db: &TestDb, key: &TestKey, dump: &str) {
    assert!(
        !dump.contains(key.base64()),
        "the master key is in the dump"
    );
    assert!(!dump.contains(&db.url), "DATABASE_URL is in the dump");
    assert!(!dump.contains(TOKEN), "VIBEE_TOKEN is in the dump");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_env_keeps_dollar_text_literal_or_refuses_it_by_name() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let dir = tempfile::tempdir().unwrap();

    // Outside single quotes: refused, naming line and variable, never the value.
    for (n, line) in [
        "TELEGRAM_USERNAME=\"${MASTER_KEY}\"",
        "TELEGRAM_USERNAME=${DATABASE_URL}",
        "TELEGRAM_USERNAME=$VIBEE_TOKEN",
        "TELEGRAM_PHONE=\"+1555$VIBEE_TOKEN\"",
        "TELEGRAM_SESSION_DATA=${MASTER_KEY}",
    ]
    .iter()
    .enumerate()
    {
        let path = dir.path().join(format!("bad{n}.env"));
        std::fs::write(
            &path,
            format!(
                "# a tenant's file\nexport TELEGRAM_SESSION_ID=acme{n}\nTELEGRAM_API_ID=42\n\
                 TELEGRAM_API_HASH={HASH}\n{line}\n"
            ),
        )
        .unwrap();
        let o = operator(&db, &key)
            .args(["import-env", "--env-file"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(65), "{line}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("TELEGRAM_"), "{e}");
        assert!(e.contains("not expanded"), "{e}");
        assert!(!e.contains(key.base64()) && !e.contains(TOKEN), "{e}");
    }
    let client = db.client().await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM user_sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "a refused file stores nothing");

    // In single quotes: kept as written, not looked up.
    let path = dir.path().join("literal.env");
    std::fs::write(
        &path,
        format!(
            "TELEGRAM_SESSION_ID=acme\nTELEGRAM_API_ID=42 # the app id\n\
             TELEGRAM_API_HASH=\"{HASH}\"\nTELEGRAM_USERNAME='${{MASTER_KEY}}$VIBEE_TOKEN${{DATABASE_URL}}'\n"
        ),
    )
    .unwrap();
    let o = operator(&db, &key)
        .args(["import-env", "--env-file"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let username: Option<String> = client
        .query_one(
            "SELECT username FROM user_sessions WHERE user_id = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        username.as_deref(),
        Some("${MASTER_KEY}$VIBEE_TOKEN${DATABASE_URL}")
    );
    assert_no_leak(&db, &key, &dump(&db));
}

#[tokio::test(flavor = "multi_thread")]
async fn session_put_secrets_are_literal_and_never_expanded() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let args = ["session", "put", "--user-id", "u1", "--api-id", "42"];

    for secrets in [
        format!("api_hash={HASH}\nsession_data=${{MASTER_KEY}}\n"),
        format!("api_hash={HASH}\nsession_data=\"$VIBEE_TOKEN\"\n"),
        format!("api_hash={HASH}\nphone=${{DATABASE_URL}}\n"),
    ] {
        let mut cmd = operator(&db, &key);
        cmd.args(args).arg("--secrets-stdin");
        let o = run(cmd, &secrets);
        assert_eq!(o.status.code(), Some(65), "{secrets}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains("line 2") && e.contains("not expanded"), "{e}");
        assert!(!e.contains(key.base64()) && !e.contains(TOKEN), "{e}");
    }

    // Through a file too, and single quotes keep the text: `${MASTER_KEY}` is
    // not base64, so the blob is refused as such instead of holding the key.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets");
    let private = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    std::fs::write(
        &path,
        format!("api_hash={HASH}\nsession_data='${{MASTER_KEY}}'\n"),
    )
    .unwrap();
    private(&path);
    let mut cmd = operator(&db, &key);
    cmd.args(args).arg("--secrets-file").arg(&path);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    assert!(err(&o).contains("session_data"), "{}", err(&o));

    // A literal value that is valid: stored as written, read back the same.
    std::fs::write(
        &path,
        format!("export api_hash='{HASH}'\nsession_data=\"JE1BU1RFUl9LRVk=\" # '$MASTER_KEY' in base64\n"),
    )
    .unwrap();
    let mut cmd = operator(&db, &key);
    cmd.args(args).arg("--secrets-file").arg(&path);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let o = operator(&db, &key)
        .args(["session", "get", "u1", "--show-secrets", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["session_data"], "JE1BU1RFUl9LRVk=");
    assert_eq!(doc["api_hash"], HASH);
    assert_no_leak(&db, &key, &dump(&db));
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_env_is_read_from_the_working_directory_only_and_literally() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let parent = tempfile::tempdir().unwrap();
    let child = parent.path().join("work");
    std::fs::create_dir(&child).unwrap();
    // A parent directory's .env is not ours: it must not be read.
    std::fs::write(
        parent.path().join(".env"),
        "DATABASE_URL=postgres://nobody@127.0.0.1:1/parent_env_was_read\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MASTER_KEY", key.base64())
        .current_dir(&child)
        .args(["session", "list", "--json"]);
    let o = cmd.output().unwrap();
    assert!(!err(&o).contains("parent_env_was_read"), "{}", err(&o));
    assert_eq!(o.status.code(), Some(3), "no DATABASE_URL: {}", err(&o));

    // ./.env is read, literally: `$` outside single quotes is refused.
    std::fs::write(child.join(".env"), format!("DATABASE_URL='{}'\n", db.url)).unwrap();
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    std::fs::write(child.join(".env"), "DATABASE_URL=\"$HOME\"\n").unwrap();
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(
        err(&o).contains(".env") && err(&o).contains("line 1"),
        "{}",
        err(&o)
    );

    // Another user's .env is refused (the owner check runs on the open file).
    std::fs::write(child.join(".env"), format!("DATABASE_URL='{}'\n", db.url)).unwrap();
    std::os::unix::fs::chown(child.join(".env"), Some(65534), Some(65534)).unwrap();
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("owned by"), "{}", err(&o));
}
