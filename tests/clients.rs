//! The API as clients no one here wrote meet it, against a real `serve`:
//! the OpenAPI document validates (openapi-spec-validator), a client
//! generated from the served document (openapi-python-client) performs
//! every operation, and the Go code of docs/BRIDGE_INTEGRATION.md (its HTTP
//! calls, standard library only) works as the doc says.
//!
//! The tools come from `scripts/openapi-client-test.sh --setup` (a venv
//! under target/, Debian's golang-go); `scripts/test.sh` runs it first.
//! Without them these tests fail and say what to run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{Server, create_token};
use common::{TestDb, TestKey};
use serde_json::json;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, from VIBEE_CLIENT_VENV or `target/openapi-venv`.
fn python() -> PathBuf {
    let venv = std::env::var_os("VIBEE_CLIENT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/openapi-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash scripts/openapi-client-test.sh --setup` (it installs \
         openapi-spec-validator, openapi-core and openapi-python-client into that venv)",
        python.display()
    );
    python
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

#[test]
fn the_openapi_document_validates() {
    let out = run(
        Command::new(python())
            .arg(root().join("tests/clients/openapi_check.py"))
            .args(["spec", "docs/openapi.json"])
            .current_dir(root()),
        "openapi-spec-validator",
    );
    assert!(out.contains("valid OpenAPI 3.1"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_python_client_performs_every_operation() {
    let db = TestDb::new().await;
    let server = Server::start(&db, &TestKey::generate());
    let token = create_token(&db, "generated-client", "admin");
    let work = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(python())
            .arg(root().join("tests/clients/openapi_check.py"))
            .args(["client", &server.base, &token])
            .arg(work.path()),
        "the generated client",
    );
    assert!(out.contains("operations performed and valid"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bridge_docs_go_code_works_against_the_server() {
    let go = which("go").unwrap_or_else(|| {
        panic!(
            "go is missing: run `bash scripts/openapi-client-test.sh --setup` \
             (it installs Debian's golang-go)"
        )
    });
    let db = TestDb::new().await;
    let server = Server::start(&db, &TestKey::generate());
    let token = create_token(&db, "bridge", "sessions:read,sessions:write");
    let admin = server
        .client()
        .with_token(&create_token(&db, "admin", "admin"));
    let created = admin.post_json(
        "/api/v1/sessions",
        &json!({"user_id": "gotd-user", "session_id": "gotd-sid", "api_id": 1,
                "api_hash": "0123456789abcdef0123456789abcdef"}),
    );
    assert_eq!(created.status, 201);
    let cache = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(go)
            .args(["run", "."])
            .args([&server.base, "gotd-sid", &token])
            .current_dir(root().join("tests/clients/bridge"))
            // Offline: the program needs no module but the standard library.
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOCACHE", cache.path().join("build"))
            .env("GOPATH", cache.path().join("gopath")),
        "go run tests/clients/bridge",
    );
    assert!(out.contains("as the doc says"), "{out}");
    // The doc's snippet and the tested program make the same calls.
    let doc = std::fs::read_to_string(root().join("docs/BRIDGE_INTEGRATION.md")).unwrap();
    for call in [
        "http.MethodGet, s.endpoint(), nil",
        "http.MethodPut, s.endpoint(), bytes.NewReader(data)",
        "http.MethodDelete, s.endpoint(), nil",
        "resp.StatusCode != http.StatusOK",
        "req.Header.Set(\"If-Match\", ifMatch)",
        "return resp.Header.Get(\"ETag\"), nil",
    ] {
        assert!(
            doc.contains(call),
            "docs/BRIDGE_INTEGRATION.md lacks {call}"
        );
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
