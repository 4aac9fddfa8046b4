//! `boot --exec` as a supervisor holding leases: one tenant (exit 13,
//! --wait, signals, the child dying with the loader, a broken lease), and
//! several loaders splitting `--all` between them, through joins and kills.
//! Real processes, a real PostgreSQL, a real `serve` for the API source.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{HASH, Server, create_token};
use common::{TestDb, TestKey, open_vault};
use secrecy::SecretString;
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::sessions::{self, SessionInput};

const BIN: &str = env!("CARGO_BIN_EXE_vibee-sessions");

async fn seed(db: &TestDb, key: &TestKey, n: usize) {
    let vault = open_vault(db, key).await;
    let mut conn = db.conn().await;
    for i in 0..n {
        let input = SessionInput {
            user_id: format!("u{i:03}"),
            session_id: Some(format!("s{i:03}")),
            api_id: 1,
            api_hash: SecretString::from(HASH),
            ..Default::default()
        };
        sessions::upsert(&mut conn, &vault, &AuditContext::cli(), &input)
            .await
            .unwrap();
    }
}

fn loader(db: &TestDb, key: &TestKey, holder: &str, args: &[&str], script: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("DATABASE_URL", &db.url)
        .env("MASTER_KEY", key.base64())
        .env("RUST_LOG", "warn")
        .env("VIBEE_HOLDER", holder)
        .arg("boot")
        .args(args)
        .args([
            "--lease-ttl",
            "6s",
            "--stop-grace",
            "2s",
            "--exec",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null());
    cmd
}

/// A child that records what it was given in DIR/<holder> and waits;
/// on SIGTERM it writes `term` and exits 7.
fn agent_script(dir: &Path) -> String {
    format!(
        "f={}/$VIBEE_LEASE_HOLDER; \
         if [ -n \"$VIBEE_SESSIONS_FD\" ]; then cat /dev/fd/$VIBEE_SESSIONS_FD > $f.json; \
         else echo \"$TELEGRAM_SESSION_ID $VIBEE_LEASE_FENCE\" > $f.env; fi; \
         echo $$ > $f.pid; trap 'echo term > $f.term; exit 7' TERM; \
         while :; do sleep 0.1; done",
        dir.display()
    )
}

/// A loader process, killed when the test ends however it ends (its agent
/// then dies with it).
struct Loader(Child);

impl Drop for Loader {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Loader {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Loader {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn start(mut cmd: Command) -> Loader {
    Loader(cmd.spawn().unwrap())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn term(child: &Child) {
    // SAFETY: a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

async fn lease_rows(db: &TestDb) -> Vec<(String, String, i64)> {
    db.client()
        .await
        .query(
            "SELECT session_id, holder, fence FROM session_leases WHERE expires_at > now() ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_is_held_refused_elsewhere_and_released_on_sigterm() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let script = agent_script(dir.path());
    let mut a = start(loader(&db, &key, "host-a", &["--user-id", "u000"], &script));
    let env_file = dir.path().join("host-a.env");
    wait_for("the agent", Duration::from_secs(20), || env_file.exists());
    let given = std::fs::read_to_string(&env_file).unwrap();
    let rows = lease_rows(&db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("s000", "host-a"));
    assert_eq!(
        given.trim(),
        format!("s000 {}", rows[0].2),
        "the agent knows its fence"
    );

    // A second loader is refused with 13, told who holds it and until when.
    let o = loader(&db, &key, "host-b", &["--user-id", "u000"], &script)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(13));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("leased to host-a until 20"), "{e}");
    assert!(!dir.path().join("host-b.env").exists(), "no agent started");

    // --wait: b starts as soon as a stops; SIGTERM reaches a's agent and a
    // exits with its status.
    let mut b = start(loader(
        &db,
        &key,
        "host-b",
        &["--user-id", "u000", "--wait"],
        &script,
    ));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !dir.path().join("host-b.env").exists(),
        "b waits while a holds it"
    );
    term(&a);
    assert_eq!(a.wait().unwrap().code(), Some(7));
    assert!(dir.path().join("host-a.term").exists());
    wait_for("b's agent", Duration::from_secs(10), || {
        dir.path().join("host-b.env").exists()
    });
    let rows = lease_rows(&db).await;
    assert_eq!(rows[0].1, "host-b");
    let fence_b: i64 = std::fs::read_to_string(dir.path().join("host-b.env"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        fence_b
            > given
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<i64>()
                .unwrap()
    );

    // SIGKILL of the loader: its agent dies with it (PR_SET_PDEATHSIG).
    let pid = read_pid(&dir.path().join("host-b.pid")).unwrap();
    assert!(alive(pid));
    b.kill().unwrap();
    b.wait().unwrap();
    wait_for("the orphan to die", Duration::from_secs(5), || !alive(pid));
    // The lease stays until it expires: nobody else may run it before.
    assert_eq!(lease_rows(&db).await[0].1, "host-b");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_lease_stops_the_agent_and_exits_13() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = loader(
        &db,
        &key,
        "host-a",
        &["--user-id", "u000"],
        &agent_script(dir.path()),
    );
    cmd.stderr(Stdio::piped());
    let mut a = start(cmd);
    wait_for("the agent", Duration::from_secs(20), || {
        dir.path().join("host-a.env").exists()
    });
    db.client()
        .await
        .execute("DELETE FROM session_leases", &[])
        .await
        .unwrap();
    let status = a.wait().unwrap();
    assert_eq!(status.code(), Some(13));
    assert!(
        dir.path().join("host-a.term").exists(),
        "the agent was stopped"
    );
    let mut e = String::new();
    std::io::Read::read_to_string(&mut a.stderr.take().unwrap(), &mut e).unwrap();
    assert!(e.contains("lost the lease of user_id u000"), "{e}");
}

/// Which loader's agent runs which sessions, from the JSON each was given
/// (only loaders whose agent is alive count).
fn coverage(dir: &Path, holders: &[&str]) -> HashMap<String, BTreeSet<String>> {
    let mut out = HashMap::new();
    for h in holders {
        let pid = read_pid(&dir.join(format!("{h}.pid")));
        if !pid.is_some_and(alive) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{h}.json"))) else {
            continue;
        };
        let Ok(doc) = serde_json::from_str::<Vec<serde_json::Value>>(&text) else {
            continue;
        };
        let set = doc
            .iter()
            .map(|t| t["session_id"].as_str().unwrap().to_owned())
            .collect();
        out.insert(h.to_string(), set);
    }
    out
}

/// Every session in exactly one live agent, each loader within its share.
fn settled(cov: &HashMap<String, BTreeSet<String>>, loaders: usize, total: usize) -> bool {
    let all: usize = cov.values().map(BTreeSet::len).sum();
    let union: BTreeSet<&String> = cov.values().flatten().collect();
    let share = total.div_ceil(loaders);
    cov.len() == loaders
        && all == total
        && union.len() == total
        && cov.values().all(|s| s.len() <= share)
}

#[tokio::test(flavor = "multi_thread")]
async fn loaders_split_all_sessions_through_a_join_and_a_kill() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, 12).await;
    let dir = tempfile::tempdir().unwrap();
    let script = agent_script(dir.path());
    let spawn = |h: &str| start(loader(&db, &key, h, &["--all"], &script));
    let mut a = spawn("la");
    let mut b = spawn("lb");
    let period = Duration::from_secs(2);
    let ttl = Duration::from_secs(6);
    wait_for("two loaders to split 12", ttl * 3, || {
        settled(&coverage(dir.path(), &["la", "lb"]), 2, 12)
    });
    let cov = coverage(dir.path(), &["la", "lb"]);
    assert_eq!((cov["la"].len(), cov["lb"].len()), (6, 6), "{cov:?}");

    // A third joins: the others hand over above their share (4 each).
    let mut c = spawn("lc");
    wait_for("three loaders to split 12", ttl * 3, || {
        settled(&coverage(dir.path(), &["la", "lb", "lc"]), 3, 12)
    });
    let cov = coverage(dir.path(), &["la", "lb", "lc"]);
    assert!(cov.values().all(|s| s.len() == 4), "{cov:?}");
    let rows = lease_rows(&db).await;
    assert_eq!(rows.len(), 12);

    // kill -9 of one: the two others take its sessions up within TTL plus
    // a renewal period (plus the time to restart an agent).
    let dead = read_pid(&dir.path().join("lc.pid")).unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    let killed = Instant::now();
    wait_for("the orphan to die", Duration::from_secs(5), || !alive(dead));
    wait_for("two loaders to cover 12 again", ttl * 3, || {
        settled(&coverage(dir.path(), &["la", "lb"]), 2, 12)
    });
    let took = killed.elapsed();
    assert!(took < ttl + period * 2, "re-covered in {took:?}");

    for l in [&a, &b] {
        term(l);
    }
    assert_eq!(a.wait().unwrap().code(), Some(7));
    assert_eq!(b.wait().unwrap().code(), Some(7));
    assert!(
        lease_rows(&db).await.is_empty(),
        "a clean stop releases every lease"
    );
}

/// Three loaders started at once over 300 sessions: each may plan before
/// it sees the others, yet they split them without a double, none above
/// its share, and give every lease back (one batch each) when stopped.
#[tokio::test(flavor = "multi_thread")]
async fn three_loaders_started_together_split_300_sessions() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, 300).await;
    let dir = tempfile::tempdir().unwrap();
    let script = agent_script(dir.path());
    let holders = ["ta", "tb", "tc"];
    let loaders: Vec<Loader> = holders
        .iter()
        .map(|h| start(loader(&db, &key, h, &["--all"], &script)))
        .collect();
    wait_for(
        "three loaders to split 300",
        Duration::from_secs(18),
        || settled(&coverage(dir.path(), &holders), 3, 300),
    );
    let rows = lease_rows(&db).await;
    assert_eq!(rows.len(), 300);
    for h in holders {
        assert_eq!(rows.iter().filter(|r| r.1 == h).count(), 100, "{h}");
    }
    for mut l in loaders {
        term(&l);
        assert_eq!(l.wait().unwrap().code(), Some(7));
    }
    assert!(lease_rows(&db).await.is_empty(), "every lease released");
    // Nothing expired or was taken over: every lease taken (also one handed
    // over when a loader took more than its share at first) was released.
    let count = |kind: &'static str| {
        let db = &db;
        async move {
            let n: i64 = db
                .client()
                .await
                .query_one(
                    "SELECT count(*) FROM session_activity WHERE activity_type = $1",
                    &[&kind],
                )
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    let taken = count("lease_taken").await;
    assert!(taken >= 300, "{taken}");
    assert_eq!(count("lease_released").await, taken);
    assert_eq!(count("lease_taken_over").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn printing_takes_no_lease_and_the_api_source_leases_over_rest() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    seed(&db, &key, 2).await;
    let o = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("MASTER_KEY", key.base64())
        .args(["boot", "--all", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(lease_rows(&db).await.is_empty(), "--format takes no lease");

    let server = Server::start(&db, &key);
    // write: the API source stamps last_seen_at with a PATCH.
    let token = create_token(
        &db,
        "agent-host",
        "sessions:read,sessions:list,sessions:write",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("VIBEE_API_URL", &server.base)
        .env("VIBEE_TOKEN", &token)
        .env("VIBEE_HOLDER", "api-host")
        .args([
            "boot",
            "--all",
            "--lease-ttl",
            "6s",
            "--exec",
            "--",
            "sh",
            "-c",
        ])
        .arg(agent_script(dir.path()));
    let mut child = start(cmd);
    wait_for("the agent", Duration::from_secs(20), || {
        settled(&coverage(dir.path(), &["api-host"]), 1, 2)
    });
    let rows = lease_rows(&db).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.1 == "api-host"));
    let audit: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM session_activity WHERE activity_type = 'lease_taken' AND actor = 'agent-host'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 2);
    term(&child);
    assert_eq!(child.wait().unwrap().code(), Some(7));
    assert!(lease_rows(&db).await.is_empty());
}
