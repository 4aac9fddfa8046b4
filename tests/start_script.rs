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

#[tokio::test(flavor = "multi_thread")]
async fn start_script_then_the_readme_curl_examples() {
    let db = TestDb::new().await;
    let keys = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{root}/scripts/start.sh"))
        .env_remove("MASTER_KEY")
        .env_remove("MASTER_KEY_FILE")
        .env_remove("MASTER_PASSPHRASE")
        .env("DATABASE_URL", &db.url)
        .env("VIBEE_BIN", env!("CARGO_BIN_EXE_vibee-sessions"))
        .env("KEYS_DIR", keys.path())
        .env("LISTEN_ADDR", "127.0.0.1:0");
    let mut server = Server::spawn(cmd);
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
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{root}/scripts/start.sh"))
        .env_remove("MASTER_KEY")
        .env_remove("MASTER_KEY_FILE")
        .env_remove("MASTER_PASSPHRASE")
        .env("DATABASE_URL", &db.url)
        .env("VIBEE_BIN", env!("CARGO_BIN_EXE_vibee-sessions"))
        .env("KEYS_DIR", keys.path())
        .env("LISTEN_ADDR", "127.0.0.1:0");
    let server = Server::spawn(cmd);
    assert!(!server.logs().contains("DEVELOPMENT KEY"));
    assert_eq!(
        std::fs::read_to_string(keys.path().join("admin.token")).unwrap(),
        token_before
    );
    let got = server
        .client()
        .with_token(token_before.trim())
        .get("/api/v1/sessions/144022504");
    assert_eq!(got.status, 200);
}
