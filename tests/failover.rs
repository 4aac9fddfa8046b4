//! `serve` follows a failover by itself, on real clusters: a private primary
//! with a synchronous streaming standby (scripts/lib/standby.sh, data under
//! target/tmp, free ports), and `serve` given both hosts with
//! `target_session_attrs=read-write`.
//!
//! * The primary is stopped (`-m immediate`) under write load and the standby
//!   promoted: every answer is 2xx or 503 (never a 500, never a hang), 2xx
//!   comes back with no restart of `serve`, and every acknowledged write is
//!   readable from the promoted standby.
//! * The primary turns read-only without closing its connections (as a
//!   fenced or demoted primary does) and the standby is promoted: writes
//!   answer 503 (not 500) meanwhile, and afterwards none of the pool's
//!   connections to the old server is used again.
//!
//! Skipped, saying so, only when the PostgreSQL server binaries are absent.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestKey;
use common::server::{Http, Server, create_token_at};
use serde_json::json;

fn pg_bin() -> PathBuf {
    std::env::var_os("PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// A primary and its synchronous standby; both stopped and removed on drop.
struct Pair {
    dir: PathBuf,
    primary: u16,
    standby: u16,
}

impl Pair {
    /// `None` (after printing SKIPPED) when the server binaries are absent.
    fn create(name: &str) -> Option<Self> {
        let missing: Vec<String> = ["initdb", "pg_ctl", "pg_basebackup", "postgres"]
            .iter()
            .map(|p| pg_bin().join(p))
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "SKIPPED: the PostgreSQL server binaries are absent ({}); install postgresql-15 \
                 or set PG_BIN",
                missing.join(", ")
            );
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("failover-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Self::script(
            &format!(
                "STANDBY_FSYNC=off standby_create '{}' && echo \"$standby_primary_port $standby_standby_port\"",
                dir.display()
            ),
            "",
        );
        let mut ports = out.split_whitespace().map(|p| p.parse::<u16>().unwrap());
        Some(Self {
            primary: ports.next().unwrap(),
            standby: ports.next().unwrap(),
            dir,
        })
    }

    fn script(command: &str, state: &str) -> String {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/standby.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -e; source '{}'; PG_BIN='{}'; {state} {command}",
                lib.display(),
                pg_bin().display()
            ))
            .stdin(Stdio::null())
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{command} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn run(&self, command: &str) -> String {
        let state = format!(
            "standby_dir='{}'; standby_primary_port={}; standby_standby_port={};",
            self.dir.display(),
            self.primary,
            self.standby
        );
        Self::script(command, &state)
    }

    fn sql(&self, port: u16, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(format!("postgres://postgres@127.0.0.1:{port}/{db}"))
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql on port {port}: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn database_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/vs?target_session_attrs=read-write\
             &sslmode=disable",
            self.primary, self.standby
        )
    }

    /// `serve` on both hosts (migrating the new database) and an admin token.
    fn serve(&self, key: &TestKey) -> (Server, Http) {
        self.sql(self.primary, "postgres", "CREATE DATABASE vs");
        let bin = env!("CARGO_BIN_EXE_vibee-sessions");
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", self.database_url())
            .env("MASTER_KEY", key.base64())
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("DB_POOL_SIZE", "4")
            // The key watcher's LISTEN connection wakes (and checks its
            // server still takes writes) every second.
            .env("KEY_REFRESH_SECS", "1")
            .env("RUST_LOG", "info")
            .current_dir(std::env::temp_dir());
        let server = Server::spawn(cmd);
        let token = create_token_at(&self.database_url(), "failover", "admin");
        let http = server.client().with_token(&token);
        (server, http)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.run("standby_destroy"));
    }
}

fn write(http: &Http, user_id: &str) -> u16 {
    http.post_json(
        "/api/v1/sessions",
        &json!({"user_id": user_id, "api_id": 1, "api_hash": "0123456789abcdef0123456789abcdef",
                "phone": "+15550001", "session_data": "AAAA"}),
    )
    .status
}

/// Writes until one is acknowledged, up to `limit`; the statuses seen on the way.
fn until_written(http: &Http, prefix: &str, limit: Duration) -> (Vec<u16>, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    for i in 0.. {
        let status = write(http, &format!("{prefix}-{i}"));
        seen.push(status);
        if status == 201 || status == 200 {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "no write acknowledged within {limit:?}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (seen, started.elapsed())
}

#[test]
fn serve_follows_a_promoted_standby_when_the_primary_stops() {
    let Some(pair) = Pair::create("stop") else {
        return;
    };
    let key = TestKey::generate();
    let (server, http) = pair.serve(&key);
    for i in 0..5 {
        assert_eq!(write(&http, &format!("before-{i}")), 201);
    }
    // Synchronous replication: the standby holds them already.
    assert_eq!(
        pair.sql(pair.standby, "vs", "SELECT count(*) FROM user_sessions"),
        "5"
    );

    // Eight writers through the switch; each write is a new user_id.
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (http, stop, results) = (http.clone(), stop.clone(), results.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let uid = format!("load-{w}-{n}");
                    let status = write(&http, &uid);
                    results.lock().unwrap().push((uid, status));
                    n += 1;
                    if status == 503 {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    pair.run("standby_stop_primary immediate");
    std::thread::sleep(Duration::from_millis(1500));
    pair.run("standby_promote");
    let promoted = Instant::now();
    let (_, back_after) = until_written(&http, "probe", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    let results = results.lock().unwrap();
    let count = |f: &dyn Fn(u16) -> bool| results.iter().filter(|(_, s)| f(*s)).count();
    let acked: Vec<&String> = results
        .iter()
        .filter(|(_, s)| *s == 201)
        .map(|(u, _)| u)
        .collect();
    let unavailable = count(&|s| s == 503);
    eprintln!(
        "{} writes: {} acknowledged, {unavailable} answered 503; a write was acknowledged \
         {back_after:?} after the promotion returned ({:?} ago)",
        results.len(),
        acked.len(),
        promoted.elapsed()
    );
    let other: Vec<u16> = results
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| *s != 201 && *s != 503)
        .collect();
    assert!(other.is_empty(), "answers other than 201/503: {other:?}");
    assert!(unavailable > 0, "no 503 while no server took writes");
    // The same process throughout: it never exited.
    assert!(server_alive(&server), "serve exited: {}", server.logs());

    // Every acknowledged write is on the promoted standby, and decrypts.
    for uid in acked.iter().chain(&[&"before-0".to_owned()]) {
        let r = http.get(&format!("/api/v1/users/{uid}/session"));
        assert_eq!(r.status, 200, "acknowledged write {uid} lost: {}", r.status);
        assert_eq!(r.json()["phone"], "+15550001");
    }
    assert_eq!(
        pair.sql(pair.standby, "postgres", "SELECT pg_is_in_recovery()"),
        "f"
    );
}

fn server_alive(server: &Server) -> bool {
    Command::new("kill")
        .args(["-0", &server.pid().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Connections of `serve` on database `vs`: the pool's and the LISTEN
/// connections of the token cache and the key watcher.
const SERVE_BACKENDS: &str = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'vs' \
    AND backend_type = 'client backend' AND pid <> pg_backend_pid()";

#[test]
fn connections_to_a_server_turned_read_only_are_not_reused() {
    let Some(pair) = Pair::create("fence") else {
        return;
    };
    let key = TestKey::generate();
    let (_server, http) = pair.serve(&key);
    // Fill the pool (4) with connections to the primary.
    std::thread::scope(|s| {
        for w in 0..8 {
            let http = &http;
            s.spawn(move || {
                for i in 0..3 {
                    assert_eq!(write(http, &format!("fill-{w}-{i}")), 201);
                }
            });
        }
    });
    let before: u32 = pair
        .sql(pair.primary, "postgres", SERVE_BACKENDS)
        .parse()
        .unwrap();
    assert!(before >= 4, "serve holds {before} connections");

    // The primary turns read-only, its sessions stay open (a fenced primary).
    pair.sql(
        pair.primary,
        "postgres",
        "ALTER SYSTEM SET default_transaction_read_only = on",
    );
    pair.sql(pair.primary, "postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..6 {
        let started = Instant::now();
        let status = write(&http, &format!("fenced-{i}"));
        eprintln!(
            "write to the read-only primary: {status} in {:?}",
            started.elapsed()
        );
        assert_eq!(status, 503, "a write to a read-only server must be a 503");
    }

    // No server takes writes now: a command says so, host by host, and
    // never shows the password.
    let with_password = pair.database_url().replace(
        "postgres://postgres@",
        "postgres://postgres:Failover-pw-4711@",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &with_password)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    for port in [pair.primary, pair.standby] {
        assert!(
            stderr.contains(&format!(
                "127.0.0.1:{port}: error connecting to server: database does not allow writes"
            )),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("Failover-pw-4711"), "{stderr}");

    // The standby is promoted; the old primary stays up, read-only.
    pair.run("standby_promote");
    let (seen, after) = until_written(&http, "promoted", Duration::from_secs(30));
    eprintln!("after the promotion: {seen:?}, acknowledged after {after:?}");
    // Sequential writes walk the whole pool: a connection to the old server
    // would answer 503 (read-only) to one of them.
    for i in 0..20 {
        assert_eq!(write(&http, &format!("after-{i}")), 201, "write {i}");
        let r = http.get(&format!("/api/v1/users/after-{i}/session"));
        assert_eq!(r.status, 200);
    }
    let mut left = String::new();
    for _ in 0..50 {
        left = pair.sql(pair.primary, "postgres", SERVE_BACKENDS);
        if left == "0" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        left,
        "0",
        "serve's connections still open on the old server: {}",
        pair.sql(
            pair.primary,
            "postgres",
            "SELECT string_agg(state || ': ' || query, ' | ') FROM pg_stat_activity \
             WHERE datname = 'vs' AND pid <> pg_backend_pid()"
        )
    );
    assert_eq!(
        pair.sql(
            pair.standby,
            "vs",
            "SELECT count(*) FROM user_sessions WHERE user_id LIKE 'after-%'"
        ),
        "20"
    );
}
