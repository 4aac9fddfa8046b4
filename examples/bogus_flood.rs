//! Do legitimate callers keep their latency while bogus-token clients hammer
//! the server? Measures, in one run and side by side, the latency of a
//! legitimate client's credentials reads alone and while `--flood` clients
//! send requests with bogus `vbs_…` tokens (distinct ones: the negative cache
//! cannot help; only the lookup gate and the pool stand in the way).
//!
//!   bogus_flood --target http://127.0.0.1:PORT --token-file F --user-id U
//!               [--flood 512] [--requests 2000] [--legit 4]
//!
//! Loopback only. Prints one table: p50/p99/max and status counts of the
//! legitimate reads, alone and under the flood, and their ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(35)))
        .build()
        .new_agent()
}

struct Run {
    latencies: Vec<Duration>,
    non_200: usize,
}

/// `legit` threads each read `requests / legit` times.
fn measure(base: &str, token: &str, user: &str, requests: usize, legit: usize) -> Run {
    let url = format!("{base}/api/v1/users/{user}/session");
    let per = requests / legit;
    let threads: Vec<_> = (0..legit)
        .map(|_| {
            let (url, bearer) = (url.clone(), format!("Bearer {token}"));
            std::thread::spawn(move || {
                let agent = agent();
                let mut out = Vec::with_capacity(per);
                let mut bad = 0;
                for _ in 0..per {
                    let started = Instant::now();
                    let status = agent
                        .get(&url)
                        .header("Authorization", &bearer)
                        .call()
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    out.push(started.elapsed());
                    bad += usize::from(status != 200);
                }
                (out, bad)
            })
        })
        .collect();
    let mut run = Run {
        latencies: Vec::new(),
        non_200: 0,
    };
    for t in threads {
        let (l, b) = t.join().unwrap();
        run.latencies.extend(l);
        run.non_200 += b;
    }
    run.latencies.sort();
    run
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let base = arg("--target").expect("--target URL");
    assert!(
        base.starts_with("http://127.") || base.starts_with("http://localhost"),
        "loopback targets only"
    );
    let token = std::fs::read_to_string(arg("--token-file").expect("--token-file F"))
        .unwrap()
        .trim()
        .to_owned();
    let user = arg("--user-id").expect("--user-id U");
    let flood: usize = arg("--flood").map_or(512, |v| v.parse().unwrap());
    let requests: usize = arg("--requests").map_or(2000, |v| v.parse().unwrap());
    let legit: usize = arg("--legit").map_or(4, |v| v.parse().unwrap());

    // Warm up (connection setup, the token cache), then measure alone.
    measure(&base, &token, &user, legit * 10, legit);
    let alone = measure(&base, &token, &user, requests, legit);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..flood)
        .map(|i| {
            let (stop, sent, refused) = (stop.clone(), sent.clone(), refused.clone());
            let url = format!("{base}/api/v1/users/{user}/session");
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let agent = agent();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        // Shaped as our tokens are (`vbs_` and 43 base64url
                        // characters), so each one costs a lookup.
                        let bearer = format!("Bearer vbs_bogus{i:05}x{n:032}");
                        let ok = agent.get(&url).header("Authorization", &bearer).call();
                        sent.fetch_add(1, Ordering::Relaxed);
                        if !matches!(ok.map(|r| r.status().as_u16()), Ok(401)) {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let flooded = measure(&base, &token, &user, requests, legit);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.join();
    }

    println!(
        "legitimate reads ({requests}, {legit} clients) | alone | with {flood} bogus-token clients | ratio"
    );
    for (name, p) in [("p50 ms", 0.5), ("p99 ms", 0.99), ("max ms", 1.0)] {
        let (a, b) = (pct(&alone.latencies, p), pct(&flooded.latencies, p));
        println!("{name:<8} | {a:>8.2} | {b:>8.2} | {:>6.2}x", b / a);
    }
    println!("non-200  | {:>8} | {:>8} |", alone.non_200, flooded.non_200);
    println!(
        "bogus requests sent in all: {} ({:.0}/s over the measured run), not answered 401: {}",
        sent.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed) as f64 / seconds,
        refused.load(Ordering::Relaxed)
    );
}
