//! `scripts/start.sh` brings the API up with no other step, and the README's
//! curl examples work as written against it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::TestDb;
use common::server::Server;

/// The README's quick-start block that holds the curl examples.
fn readme_curl_block() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Quick start")
        .nth(1)
        .expect("README has a Quick start");
    section
        .split("```sh")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_owned())
        .find(|b| b.contains("curl"))
        .expect("a curl example in the quick start")
}

/// `scripts/start.sh` as a new user runs it: no master key configured, keys
/// kept in `keys_dir`, the debug binary instead of a release build.
fn start_serving(db: &TestDb, keys_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start.sh"))
        .env_remove("MASTER_KEY")
        .env_remove("MASTER_KEY_FILE")
        .env_remove("MASTER_PASSPHRASE")
        .env("DATABASE_URL", &db.url)
        .env("VIBEE_SESSIONS_BIN", env!("CARGO_BIN_EXE_vibee-sessions"))
        .env("KEYS_DIR", keys_dir)
        .env("LISTEN_ADDR", "127.0.0.1:0");
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn start_script_then_the_readme_curl_examples() {
    let db = TestDb::new().await;
    let keys = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(start_serving(&db, keys.path()));
    let logs = server.logs();
    assert!(
        logs.contains("DEVELOPMENT KEY"),
        "the generated key is announced:\n{logs}"
    );
    for file in ["master.key", "admin.token"] {
        let mode = std::fs::metadata(keys.path().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }

    let script = readme_curl_block()
        .replace("http://localhost:8080", &server.base)
        .replace(
            "keys/admin.token",
            &keys.path().join("admin.token").display().to_string(),
        );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("\"user_id\":\"144022504\""), "{stdout}");
    assert!(
        stdout.contains("\"api_hash\":\"0123456789abcdef0123456789abcdef\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"phone\":\"+15551234567\""), "{stdout}");
    server.stop();

    // A second start reuses the key and the token: the data stays readable.
    let token_before = std::fs::read_to_string(keys.path().join("admin.token")).unwrap();
    let server = Server::spawn(start_serving(&db, keys.path()));
    assert!(!server.logs().contains("DEVELOPMENT KEY"));
    assert_eq!(
        std::fs::read_to_string(keys.path().join("admin.token")).unwrap(),
        token_before
    );
    let got = server
        .client()
        .with_token(token_before.trim())
        .get("/api/v1/users/144022504/session");
    assert_eq!(got.status, 200);
}

/// With AGENT_CMD, start.sh boots the agent in the mode the environment chooses.
#[tokio::test(flavor = "multi_thread")]
async fn start_script_boots_the_agent_in_each_mode() {
    use secrecy::SecretString;
    use vibee_sessions::db::activity::AuditContext;
    use vibee_sessions::db::sessions::{self, SessionInput};

    let common::TestStore {
        db,
        key,
        vault,
        mut conn,
    } = common::TestStore::new().await;
    for user in ["tenant-a", "tenant-b"] {
        let input = SessionInput {
            user_id: user.into(),
            api_id: 777,
            api_hash: SecretString::from("0123456789abcdef0123456789abcdef"),
            ..Default::default()
        };
        sessions::upsert(&mut conn, &vault, &AuditContext::cli(), &input)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent.sh");
    std::fs::write(
        &agent,
        "#!/bin/sh\n\
         test -z \"$MASTER_KEY$DATABASE_URL\" || { echo 'agent saw a secret of the loader'; exit 9; }\n\
         if [ -n \"$VIBEE_SESSIONS_FD\" ]; then echo \"agent: $VIBEE_SESSIONS_COUNT tenants, first arg $1\";\n\
         else echo \"agent: user=$VIBEE_USER_ID api_id=$TELEGRAM_API_ID arg=$1\"; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new("bash");
        cmd.arg(format!("{root}/scripts/start.sh"))
            .env_remove("MASTER_KEY_FILE")
            .env_remove("MASTER_PASSPHRASE")
            .env_remove("USER_ID")
            .env_remove("MULTI_TENANT")
            .env("VIBEE_SESSIONS_BIN", env!("CARGO_BIN_EXE_vibee-sessions"))
            .env("KEYS_DIR", dir.path())
            .env("AGENT_CMD", format!("{} --hello", agent.display()));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{vars:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let legacy = run(&[
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
        ("MASTER_KEY", ""),
        ("TELEGRAM_SESSION_ID", "legacy-session"),
        ("TELEGRAM_API_ID", "4242"),
        ("TELEGRAM_API_HASH", "fedcba9876543210fedcba9876543210"),
    ]);
    assert!(
        legacy.contains("agent: user= api_id=4242 arg=--hello")
            || legacy.contains("api_id=4242 arg=--hello"),
        "{legacy}"
    );
    let one = run(&[
        ("DATABASE_URL", &db.url),
        ("MASTER_KEY", key.base64()),
        ("USER_ID", "tenant-b"),
    ]);
    assert!(
        one.contains("agent: user=tenant-b api_id=777 arg=--hello"),
        "{one}"
    );
    let all = run(&[
        ("DATABASE_URL", &db.url),
        ("MASTER_KEY", key.base64()),
        ("MULTI_TENANT", "true"),
    ]);
    assert!(all.contains("agent: 2 tenants, first arg --hello"), "{all}");
}
