//! A real `vibee-sessions serve` process on a free port, its logs captured,
//! and a small blocking HTTP client for it, or for the same router called in
//! this process (`Http::in_process`, through `Router::oneshot`: no process,
//! no socket, for the tests of statuses, scopes and JSON that need neither).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::{TestDb, TestKey};

pub struct Server {
    child: Child,
    pub base: String,
    logs: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(db: &TestDb, key: &TestKey) -> Self {
        Self::start_with(db, key, &[])
    }

    pub fn start_with(db: &TestDb, key: &TestKey, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db.url)
            .env("MASTER_KEY", key.base64())
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // scripts/test.sh runs the API suite once more with every server's
        // requests going through a PgBouncer in transaction mode.
        if let Some(port) = std::env::var("TEST_PGBOUNCER_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            cmd.env("DATABASE_URL", super::pgbouncer::through(&db.url, port))
                .env("DATABASE_DIRECT_URL", &db.url)
                .env("DATABASE_PREPARED_STATEMENTS", "off");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Runs `cmd` (stdout and stderr piped) until it logs "listening on URL".
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the server command starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(i) = line.find("listening on ") {
                        let url: String = line[i + 13..]
                            .chars()
                            .take_while(|c| !c.is_whitespace() && *c != '"')
                            .collect();
                        let _ = tx.send(url);
                    }
                    let mut l = logs.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not start; its output:\n{}",
                    logs.lock().unwrap()
                );
            }
        };
        Self { child, base, logs }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for the process to finish.
    pub fn stop(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }

    /// SIGKILL: no graceful stop, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn client(&self) -> Http {
        Http::new(&self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON (status {}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
enum Transport {
    /// A connection to a real `serve` process.
    Socket(ureq::Agent),
    /// The application's router, called in this process.
    InProcess(axum::Router),
}

#[derive(Clone)]
pub struct Http {
    transport: Transport,
    pub base: String,
    pub token: Option<String>,
}

impl Http {
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A fresh connection per request: the server closes a connection
            // after some errors (413), and a pooled one would then fail the
            // next request with "peer disconnected".
            .max_idle_connections(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Self {
            transport: Transport::Socket(agent),
            base: base.to_owned(),
            token: None,
        }
    }

    /// A client of `router` in this process. Each request runs to its end
    /// on the test's runtime (a `multi_thread` one: the call blocks in place).
    pub fn in_process(router: axum::Router) -> Self {
        Self {
            transport: Transport::InProcess(router),
            base: String::new(),
            token: None,
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Any request; `body` is (content type, bytes).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some((content_type, _)) = body {
            builder = builder.header("content-type", content_type);
        }
        let response = match &self.transport {
            Transport::Socket(agent) => {
                let result = match body {
                    Some((_, bytes)) => agent.run(builder.body(bytes.to_vec()).unwrap()),
                    None => agent.run(builder.body(()).unwrap()),
                };
                let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
                Response {
                    status: resp.status().as_u16(),
                    headers: resp.headers().clone(),
                    body: resp.body_mut().read_to_vec().unwrap_or_default(),
                }
            }
            Transport::InProcess(router) => {
                let bytes = body.map(|(_, b)| b.to_vec()).unwrap_or_default();
                let req = builder.body(axum::body::Body::from(bytes)).unwrap();
                oneshot(router.clone(), req)
            }
        };
        record_exchange(method, path, &response);
        response
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, None, &[])
    }

    pub fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, None, &[])
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send(
            "POST",
            path,
            Some(("application/json", body.to_string().as_bytes())),
            &[],
        )
    }

    pub fn patch_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send(
            "PATCH",
            path,
            Some(("application/json", body.to_string().as_bytes())),
            &[],
        )
    }
}

fn oneshot(router: axum::Router, req: ureq::http::Request<axum::body::Body>) -> Response {
    use tower::ServiceExt;
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async move {
            let resp = router.oneshot(req).await.expect("the router is infallible");
            let (parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("a response body in memory");
            Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_vec(),
            }
        })
    })
}

/// With `VIBEE_RECORD_EXCHANGES=DIR`, every response this client gets is
/// appended to `DIR/<pid>.jsonl`, so that `scripts/test.sh` can check each
/// one against the schema the OpenAPI document declares for it
/// (tests/clients/openapi_check.py exchanges).
fn record_exchange(method: &str, path: &str, response: &Response) {
    use std::io::Write;
    use std::sync::Mutex;
    static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);
    let Some(dir) = std::env::var_os("VIBEE_RECORD_EXCHANGES") else {
        return;
    };
    let headers: serde_json::Map<String, serde_json::Value> = response
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.into())))
        .collect();
    let line = serde_json::json!({
        "method": method,
        "url": path,
        "status": response.status,
        "headers": headers,
        "body": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &response.body),
    });
    let mut file = FILE.lock().unwrap_or_else(|p| p.into_inner());
    if file.is_none() {
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::path::Path::new(&dir).join(format!("{}.jsonl", std::process::id()));
        *file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
        );
    }
    if let Some(f) = file.as_mut() {
        writeln!(f, "{line}").unwrap();
    }
}

/// Creates a token with the binary, as an operator would.
pub fn create_token(db: &TestDb, name: &str, scopes: &str) -> String {
    create_token_at(&db.url, name, scopes)
}

/// `create_token` in the database of `database_url`.
pub fn create_token_at(database_url: &str, name: &str, scopes: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
        .args(["token", "create", "--name", name, "--scope", scopes])
        .env_clear()
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The api_hash of `session`'s body.
pub const HASH: &str = "0123456789abcdef0123456789abcdef";

/// A full session body for `POST /api/v1/sessions`.
pub fn session(user_id: &str) -> serde_json::Value {
    use base64::Engine;
    serde_json::json!({
        "user_id": user_id,
        "api_id": 12345,
        "api_hash": HASH,
        "phone": "+15551234567",
        "username": "alice",
        "session_data": base64::engine::general_purpose::STANDARD.encode(b"mtproto blob"),
        "target_chats": [-100123, "@news"],
    })
}

/// The path of a tenant's session (`/api/v1/sessions/{session_id}`), looked
/// up by user_id without reading a credential.
pub fn session_path(api: &Http, user_id: &str) -> String {
    let meta = api.get(&format!("/api/v1/users/{user_id}"));
    assert_eq!(meta.status, 200, "{}", String::from_utf8_lossy(&meta.body));
    format!(
        "/api/v1/sessions/{}",
        meta.json()["session_id"].as_str().unwrap()
    )
}
