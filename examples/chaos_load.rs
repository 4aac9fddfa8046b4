//! The load client of `scripts/chaos.sh`: writes and reads sessions through
//! the REST API while faults are injected, and keeps a ledger of every write
//! that was acknowledged (2xx). `verify` then checks that each one is in the
//! store and decrypts to the value written.
//!
//!   chaos_load load   --targets URL[,URL..] --token-file F --ledger F
//!                     --seconds S [--concurrency C] [--prefix P] [--max-requests N]
//!                     [--stop-file F] [--timeline F]
//!   chaos_load verify --targets URL --token-file F --ledger F
//!
//! Loopback only: every target must be http://127.0.0.1 or http://localhost.
//! Every loop is bounded by a deadline and a request count.
//!
//! A write that got no answer (connection refused or reset, a 5xx) is retried
//! with the same body until it is acknowledged or the run ends; an upsert of
//! the same body is idempotent. A write never acknowledged is not in the
//! ledger as certain: its user_id may hold the previous acknowledged value or
//! the unacknowledged one, and `verify` accepts either.
//!
//! `--timeline F` writes one line per answered write, `UNIX_MS STATUS` (0 for
//! no answer), for the scripts to tell when writes stopped and came back.
//!
//! Output: one `key=value` summary line (statuses, wrong reads, slowest
//! request) and, for `verify`, "N acknowledged, M lost". Exit 1 when a read
//! was wrong, a request hung, a 500 came back, or a write was lost.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// A request slower than this counts as hung (the server's own limits are
/// 5 s pool wait, 5 s lock wait, 30 s request timeout).
const HUNG: Duration = Duration::from_secs(35);

#[derive(Clone, PartialEq, Debug)]
struct Creds {
    api_hash: String,
    phone: String,
    session_data: String,
}

impl Creds {
    fn random() -> Self {
        let mut b = [0u8; 40];
        getrandom::fill(&mut b).unwrap();
        let phone_digits = u64::from_be_bytes(b[0..8].try_into().unwrap()) % 9_000_000 + 1_000_000;
        Self {
            api_hash: hex::encode(&b[8..24]),
            phone: format!("+1555{phone_digits}"),
            session_data: BASE64.encode(&b[24..40]),
        }
    }

    fn line(&self) -> String {
        format!("{},{},{}", self.api_hash, self.phone, self.session_data)
    }

    fn parse(s: &str) -> Option<Self> {
        let mut it = s.split(',');
        Some(Self {
            api_hash: it.next()?.to_owned(),
            phone: it.next()?.to_owned(),
            session_data: it.next()?.to_owned(),
        })
    }

    fn matches(&self, v: &Value) -> bool {
        v["api_hash"] == self.api_hash.as_str()
            && v["phone"] == self.phone.as_str()
            && v["session_data"] == self.session_data.as_str()
    }
}

/// What a user_id must hold at the end.
#[derive(Clone, Debug)]
struct Expect {
    acked: Creds,
    /// Later writes that got no answer: any of them may have landed.
    maybe: Vec<Creds>,
}

#[derive(Default)]
struct Stats {
    statuses: Mutex<BTreeMap<u16, u64>>,
    transport_errors: AtomicU64,
    wrong_reads: AtomicU64,
    hung: AtomicU64,
    slowest_ms: AtomicU64,
    writes_acked: AtomicU64,
    reads_ok: AtomicU64,
    /// (completion in Unix ms, status or 0) of every write.
    timeline: Mutex<Vec<(u128, u16)>>,
}

impl Stats {
    fn status(&self, s: u16) {
        *self.statuses.lock().unwrap().entry(s).or_default() += 1;
    }

    fn write_done(&self, status: u16) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.timeline.lock().unwrap().push((now, status));
    }

    fn took(&self, d: Duration) {
        self.slowest_ms
            .fetch_max(d.as_millis() as u64, Ordering::Relaxed);
        if d >= HUNG {
            self.hung.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn summary(&self) -> String {
        let statuses: Vec<String> = self
            .statuses
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        format!(
            "writes_acked={} reads_ok={} wrong_reads={} statuses={} transport_errors={} hung={} slowest_ms={}",
            self.writes_acked.load(Ordering::Relaxed),
            self.reads_ok.load(Ordering::Relaxed),
            self.wrong_reads.load(Ordering::Relaxed),
            statuses.join(","),
            self.transport_errors.load(Ordering::Relaxed),
            self.hung.load(Ordering::Relaxed),
            self.slowest_ms.load(Ordering::Relaxed),
        )
    }

    fn server_errors(&self) -> u64 {
        self.statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| **k >= 500 && **k != 503)
            .map(|(_, v)| v)
            .sum()
    }
}

struct Client {
    agent: ureq::Agent,
    targets: Vec<String>,
    token: String,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Client {
    fn new(targets: Vec<String>, token: String) -> Self {
        for t in &targets {
            assert!(
                t.starts_with("http://127.0.0.1:") || t.starts_with("http://localhost:"),
                "loopback targets only: {t}"
            );
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HUNG + Duration::from_secs(5)))
            .max_idle_connections_per_host(64)
            .build()
            .new_agent();
        Self {
            agent,
            targets,
            token,
        }
    }

    fn send(
        &self,
        stats: &Stats,
        target: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Option<Reply> {
        let url = format!("{}{path}", self.targets[target % self.targets.len()]);
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {}", self.token));
        let started = Instant::now();
        let result = match body {
            Some(b) => self.agent.run(
                builder
                    .header("content-type", "application/json")
                    .body(b.to_string().into_bytes())
                    .unwrap(),
            ),
            None => self.agent.run(builder.body(()).unwrap()),
        };
        stats.took(started.elapsed());
        match result {
            Ok(mut r) => {
                let status = r.status().as_u16();
                stats.status(status);
                let body = r.body_mut().read_to_vec().unwrap_or_default();
                Some(Reply { status, body })
            }
            Err(_) => {
                stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn required(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| panic!("{name} is required"))
}

fn body(user_id: &str, c: &Creds) -> Value {
    json!({
        "user_id": user_id,
        "api_id": 12345,
        "api_hash": c.api_hash,
        "phone": c.phone,
        "session_data": c.session_data,
    })
}

fn load(args: &[String]) -> i32 {
    let targets: Vec<String> = required(args, "--targets")
        .split(',')
        .map(str::to_owned)
        .collect();
    let token = std::fs::read_to_string(required(args, "--token-file"))
        .unwrap()
        .trim()
        .to_owned();
    let ledger = required(args, "--ledger");
    let seconds: u64 = required(args, "--seconds").parse().unwrap();
    let concurrency: usize = arg(args, "--concurrency").map_or(8, |c| c.parse().unwrap());
    let max_requests: u64 = arg(args, "--max-requests").map_or(1_000_000, |c| c.parse().unwrap());
    let prefix = arg(args, "--prefix").unwrap_or_else(|| "chaos".into());
    // Stops early when this file appears (the script's fault loop is done).
    let stop_file = arg(args, "--stop-file");
    let client = Client::new(targets, token);
    let stats = Stats::default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let requests = AtomicU64::new(0);
    let expected: Mutex<HashMap<String, Expect>> = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for w in 0..concurrency {
            let (client, stats, requests, expected, prefix, stop_file) =
                (&client, &stats, &requests, &expected, &prefix, &stop_file);
            s.spawn(move || {
                // Each worker owns its user_ids: writes to one are sequential.
                let mut mine: Vec<(String, Expect)> = Vec::new();
                let mut n = 0usize;
                let mut pick = w;
                let more = || {
                    Instant::now() < deadline
                        && !stop_file
                            .as_ref()
                            .is_some_and(|f| std::path::Path::new(f).exists())
                        && requests.fetch_add(1, Ordering::Relaxed) < max_requests
                };
                while more() {
                    n += 1;
                    pick = pick.wrapping_mul(31).wrapping_add(7);
                    // One in three: read back one of ours and check it.
                    if n.is_multiple_of(3) && !mine.is_empty() {
                        let (uid, exp) = &mine[pick % mine.len()];
                        if let Some(r) = client.send(
                            stats,
                            pick,
                            "GET",
                            &format!("/api/v1/users/{uid}/session"),
                            None,
                        ) && r.status == 200
                        {
                            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                            if exp.acked.matches(&v) || exp.maybe.iter().any(|m| m.matches(&v)) {
                                stats.reads_ok.fetch_add(1, Ordering::Relaxed);
                            } else {
                                stats.wrong_reads.fetch_add(1, Ordering::Relaxed);
                                eprintln!("WRONG READ of {uid}");
                            }
                        }
                        continue;
                    }
                    // Else a write: a new user_id, or (one in four) an update.
                    let update = n % 4 == 1 && !mine.is_empty();
                    let (uid, idx) = if update {
                        let i = pick % mine.len();
                        (mine[i].0.clone(), Some(i))
                    } else {
                        (format!("{prefix}-{w}-{n}"), None)
                    };
                    let creds = Creds::random();
                    let b = body(&uid, &creds);
                    // Until acknowledged, or the run ends.
                    let mut acked = false;
                    let mut attempt = 0usize;
                    loop {
                        let r = client.send(
                            stats,
                            pick + attempt,
                            "POST",
                            "/api/v1/sessions",
                            Some(&b),
                        );
                        stats.write_done(r.as_ref().map_or(0, |r| r.status));
                        match r {
                            Some(r) if r.status == 200 || r.status == 201 => {
                                acked = true;
                                break;
                            }
                            Some(r) if r.status < 500 => {
                                eprintln!(
                                    "write refused: {} {}",
                                    r.status,
                                    String::from_utf8_lossy(&r.body)
                                );
                                break;
                            }
                            _ => {}
                        }
                        attempt += 1;
                        if !more() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if acked {
                        stats.writes_acked.fetch_add(1, Ordering::Relaxed);
                    }
                    match (idx, acked) {
                        (Some(i), true) => {
                            mine[i].1 = Expect {
                                acked: creds,
                                maybe: Vec::new(),
                            }
                        }
                        (Some(i), false) => mine[i].1.maybe.push(creds),
                        (None, true) => mine.push((
                            uid,
                            Expect {
                                acked: creds,
                                maybe: Vec::new(),
                            },
                        )),
                        // Never acknowledged, never ledgered: a new id that
                        // may or may not exist.
                        (None, false) => {}
                    }
                }
                expected.lock().unwrap().extend(mine);
            });
        }
    });
    let expected = expected.into_inner().unwrap();
    if let Some(path) = arg(args, "--timeline") {
        let mut lines = String::new();
        for (ms, status) in stats.timeline.lock().unwrap().iter() {
            lines.push_str(&format!("{ms} {status}\n"));
        }
        std::fs::write(path, lines).unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ledger)
        .unwrap();
    for (uid, e) in &expected {
        let maybe = if e.maybe.is_empty() {
            "-".to_owned()
        } else {
            e.maybe
                .iter()
                .map(Creds::line)
                .collect::<Vec<_>>()
                .join(";")
        };
        writeln!(f, "{uid}\t{}\t{maybe}", e.acked.line()).unwrap();
    }
    println!(
        "load: {} user_ids ledgered; {}",
        expected.len(),
        stats.summary()
    );
    let bad = stats.wrong_reads.load(Ordering::Relaxed)
        + stats.hung.load(Ordering::Relaxed)
        + stats.server_errors();
    i32::from(bad > 0)
}

fn verify(args: &[String]) -> i32 {
    let targets: Vec<String> = required(args, "--targets")
        .split(',')
        .map(str::to_owned)
        .collect();
    let token = std::fs::read_to_string(required(args, "--token-file"))
        .unwrap()
        .trim()
        .to_owned();
    let ledger = std::fs::read_to_string(required(args, "--ledger")).unwrap();
    let client = Client::new(targets, token);
    let stats = Stats::default();
    let mut entries: HashMap<String, Expect> = HashMap::new();
    for line in ledger.lines() {
        let mut it = line.split('\t');
        let (Some(uid), Some(acked), Some(maybe)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        // A later run's entry for the same user_id (there is none: prefixes
        // differ per run) would supersede an earlier one.
        entries.insert(
            uid.to_owned(),
            Expect {
                acked: Creds::parse(acked).unwrap(),
                maybe: maybe.split(';').filter_map(Creds::parse).collect(),
            },
        );
    }
    // Eight readers, each a share of the ledger.
    let all: Vec<(&String, &Expect)> = entries.iter().collect();
    let lost: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = all
            .chunks(all.len().div_ceil(8).max(1))
            .enumerate()
            .map(|(t, chunk)| {
                let (client, stats) = (&client, &stats);
                s.spawn(move || {
                    let mut lost = Vec::new();
                    for (i, (uid, exp)) in chunk.iter().enumerate() {
                        let mut found = None;
                        // A few tries through a 503 (a replica still starting).
                        for attempt in 0..20 {
                            let path = format!("/api/v1/users/{uid}/session");
                            match client.send(stats, t + i + attempt, "GET", &path, None) {
                                Some(r) if r.status == 200 => {
                                    found = serde_json::from_slice::<Value>(&r.body).ok();
                                    break;
                                }
                                Some(r) if r.status == 404 => break,
                                _ => std::thread::sleep(Duration::from_millis(250)),
                            }
                        }
                        let ok = found.as_ref().is_some_and(|v| {
                            exp.acked.matches(v) || exp.maybe.iter().any(|m| m.matches(v))
                        });
                        if !ok {
                            lost.push((*uid).clone());
                        }
                    }
                    lost
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for uid in lost.iter().take(20) {
        eprintln!("LOST or WRONG: {uid}");
    }
    println!("verify: {}", stats.summary());
    println!("{} acknowledged, {} lost", entries.len(), lost.len());
    i32::from(!lost.is_empty())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("load") => load(&args),
        Some("verify") => verify(&args),
        _ => {
            eprintln!(
                "usage: chaos_load load|verify --targets URL[,URL..] --token-file F --ledger F [--seconds S]"
            );
            2
        }
    };
    std::process::exit(code);
}
