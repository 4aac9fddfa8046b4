//! Every `bash` block of the operator docs runs as written, in order, each
//! doc against a database of its own, with the binary on PATH only the way
//! the doc puts it there (the `sh` blocks need a build, production hosts or
//! a bridge's variables and are covered elsewhere).

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

/// Runs every `bash` block of `doc`, in order, in one shell, as a new
/// operator would: in a directory shaped like a checkout after the build
/// the docs show (`target/release/vibee-sessions`, `scripts/`), with a fresh
/// database, and a PATH that holds no vibee-sessions until the doc puts it
/// there. Returns stdout and stderr.
async fn run_doc(doc: &str) -> (String, String) {
    let db = TestDb::new().await;
    let work = tempfile::tempdir().unwrap();
    let release = work.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    let exe = env!("CARGO_BIN_EXE_vibee-sessions");
    std::os::unix::fs::symlink(exe, release.join("vibee-sessions")).unwrap();
    // The agent the docs start: proves it got credentials, shows no secret.
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = agent_dir.path().join("vibee-agent");
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
    for (i, block) in bash_blocks(doc).into_iter().enumerate() {
        script.push_str(&format!("echo '### {doc} block {}' >&2\n{block}", i + 1));
    }
    // The system PATH (curl, psql) and the agent; never the binary itself.
    let system_path = std::env::var("PATH").unwrap();
    let path: Vec<&str> = system_path
        .split(':')
        .filter(|d| !Path::new(d).join("vibee-sessions").exists())
        .collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env_clear()
        .env(
            "PATH",
            format!("{}:{}", agent_dir.path().display(), path.join(":")),
        )
        .env("HOME", work.path())
        .env("DATABASE_URL", &db.url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
    // Its own process group: a server a failed block left running is ended.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = child.id();
    let out = child.wait_with_output().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{doc}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        work.path().join("keys/master.key").exists() || !doc.contains("SESSION_MANAGEMENT"),
        "the key step ran"
    );
    for secret in [
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{doc}: {secret} printed"
        );
    }
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn session_management_runs_as_written() {
    let (stdout, _) = run_doc("docs/SESSION_MANAGEMENT.md").await;
    assert!(
        stdout.contains("created session of user_id 144022504"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created: user_id 987654321 session_id my_agent"),
        "{stdout}"
    );
    assert!(stdout.contains("updated: user_id 987654321"), "{stdout}");
    assert!(stdout.contains("\"user_id\":\"555000111\""), "{stdout}");
    assert!(stdout.contains("blob: 200 4 bytes"), "{stdout}");
    assert!(stdout.contains("agent: tenant 144022504"), "{stdout}");
    assert!(stdout.contains("agent: 3 tenants"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_tenant_setup_runs_as_written() {
    let (stdout, _) = run_doc("docs/MULTI_TENANT_SETUP.md").await;
    assert!(
        stdout.contains("agent: tenant my_agent"),
        "legacy mode: {stdout}"
    );
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
    let created = server.client().with_token(&token).post_json(
        "/api/v1/sessions",
        &serde_json::json!({"user_id": "555000111", "api_id": 1, "session_data": "AQIDBA==",
            "api_hash": "0123456789abcdef0123456789abcdef"}),
    );
    assert_eq!(created.status, 201);
    let session_id = created.json()["session_id"].as_str().unwrap().to_owned();
    let checked = run(
        "docs/BRIDGE_INTEGRATION.md",
        &[("TELEGRAM_SESSION_ID", &session_id)],
    );
    assert_eq!(checked.trim(), "200 4", "the blob is 4 bytes (AQIDBA==)");
}
