//! Every `bash` block of the operator docs runs as written, in order, against
//! a database of its own (the `sh` blocks need the HTTP server or production
//! hosts and are covered elsewhere).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::TestDb;

fn bash_blocks(doc: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_end() == "```bash" => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "{doc}: an unclosed code block");
    blocks
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_docs_run_as_written() {
    let db = TestDb::new().await;
    let work = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_vibee-sessions");
    std::os::unix::fs::symlink(exe, bin_dir.path().join("vibee-sessions")).unwrap();
    // The agent the docs start: proves it got credentials, shows no secret.
    let agent = bin_dir.path().join("vibee-agent");
    std::fs::write(
        &agent,
        "#!/bin/sh\nif [ -n \"$VIBEE_SESSIONS_FD\" ]; then echo \"agent: $VIBEE_SESSIONS_COUNT tenants\"; \
         else test -n \"$TELEGRAM_API_HASH\" && echo \"agent: tenant $VIBEE_USER_ID\"; fi\n\
         test -z \"$MASTER_KEY$DATABASE_URL\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"),
        work.path().join("scripts"),
    )
    .unwrap();

    let mut script = String::from("set -euo pipefail\n");
    for doc in ["docs/SESSION_MANAGEMENT.md", "docs/MULTI_TENANT_SETUP.md"] {
        for (i, block) in bash_blocks(doc).into_iter().enumerate() {
            script.push_str(&format!("echo '### {doc} block {}' >&2\n{block}", i + 1));
        }
    }
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", work.path())
        .env("DATABASE_URL", &db.url)
        .env("VIBEE_SESSIONS_BIN", exe)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("created session of user_id 144022504"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created: user_id 987654321 session_id my_agent"),
        "{stdout}"
    );
    assert!(stdout.contains("updated: user_id 987654321"), "{stdout}");
    assert!(stdout.contains("agent: tenant 144022504"), "{stdout}");
    assert!(stdout.contains("agent: 2 tenants"), "{stdout}");
    assert!(
        stdout.contains("agent: tenant my_agent"),
        "legacy mode: {stdout}"
    );
    for secret in [
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed"
        );
    }
    assert!(work.path().join("keys/master.key").exists());
}

/// The `sh` blocks that call the REST API (curl) run as written against a real
/// server, with `VIBEE_API_URL` and `VIBEE_TOKEN` set as the docs say.
#[tokio::test(flavor = "multi_thread")]
async fn curl_examples_in_the_docs_run_against_the_server() {
    use common::server::{Server, create_token};
    let db = TestDb::new().await;
    let key = common::TestKey::generate();
    let server = Server::start(&db, &key);
    let token = create_token(&db, "docs", "admin");
    let run = |doc: &str, extra: &[(&str, &str)]| -> String {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
        let blocks: Vec<String> = text
            .split("```sh\n")
            .skip(1)
            .map(|b| b.split("\n```").next().unwrap().to_owned())
            .filter(|b| b.contains("curl"))
            .collect();
        assert!(!blocks.is_empty(), "{doc} has a curl example");
        let mut out = String::new();
        for block in blocks {
            let mut cmd = Command::new("bash");
            cmd.args(["-euo", "pipefail", "-c", &block])
                .env("VIBEE_API_URL", &server.base)
                .env("VIBEE_TOKEN", &token);
            for (k, v) in extra {
                cmd.env(k, v);
            }
            let o = cmd.output().unwrap();
            assert!(
                o.status.success(),
                "{doc}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            out.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        out
    };
    let created = run("docs/SESSION_MANAGEMENT.md", &[]);
    assert!(created.contains("\"user_id\":\"555000111\""), "{created}");
    let session_id =
        serde_json::from_str::<serde_json::Value>(created.trim()).unwrap()["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let checked = run(
        "docs/BRIDGE_INTEGRATION.md",
        &[("TELEGRAM_SESSION_ID", &session_id)],
    );
    assert_eq!(checked.trim(), "200 4", "the blob is 4 bytes (AQIDBA==)");
}
