//! The framing's cost in instructions, for callgrind (load-independent,
//! unlike criterion's medians): seals or opens SIZE bytes N times, framed
//! (`KeyRing::seal`/`open`, the bench's place) or raw (aes-gcm
//! `encrypt`/`decrypt`, fixed nonce, no associated data), as
//! benches/crypto.rs does; raw+aad is raw with the framed value's
//! associated data (the GHASH work the format requires).
//!
//!   cargo build --release --example framing_cost
//!   scripts/bench/framing-callgrind.sh          (per-operation counts)
//!   target/release/examples/framing_cost cpu SIZE N ROUNDS
//!
//! `cpu` times the cases (and the nonce pool's `getrandom` per nonce) in
//! turn, N operations each, ROUNDS times, by the thread's CPU clock (kernel
//! time of `getrandom` included; time spent waiting for a core on a loaded
//! machine not), and prints each case's median in ns per operation and
//! framed / raw.
//!
//! Run under callgrind twice with different N: the difference divided by the
//! difference in N is the instruction count of one operation, without the
//! setup and the one-time costs (key schedule, TLS, first nonce refill).
//! Callgrind counts user-space instructions only: the `getrandom` system
//! call behind every 128th nonce is not in the count.

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use vibee_sessions::crypto::{DataKey, DataKeyId, FieldRef, KeyRing};

const ROW_ID: [u8; 16] = [7; 16];

fn field() -> FieldRef<'static> {
    FieldRef::new("user_sessions", "session_data_encrypted", &ROW_ID)
}

/// The associated data `field()` gets when sealed under key 1 (format v2,
/// docs/STORAGE.md), for raw AES-GCM with the same associated data: the
/// framing's inherent GHASH work, without the rest of the framing.
fn field_aad() -> Vec<u8> {
    let mut aad = b"vibee-sessions/v2".to_vec();
    for part in [
        &b"user_sessions"[..],
        b"session_data_encrypted",
        &ROW_ID,
        b"",
        b"",
    ] {
        aad.extend_from_slice(&(part.len() as u16).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&[2, 0, 0, 0, 1]);
    aad
}

/// What the nonce pool asks of the kernel per nonce: 1,536 bytes from
/// `getrandom` per 128 nonces (src/crypto/aead.rs).
const NONCE_REFILL: usize = 12 * 128;

/// CPU time this thread has used, in ns.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime failed");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median CPU ns per operation of each case, the cases interleaved round by
/// round so that all see the same machine.
fn cpu(size: usize, n: usize, rounds: usize) {
    let ring = KeyRing::new(DataKeyId(1), vec![DataKey::generate(DataKeyId(1))]).unwrap();
    let raw = Aes256Gcm::new(&Key::<Aes256Gcm>::from([3u8; 32]));
    let nonce = Nonce::from([9u8; 12]);
    let plain = vec![0x5au8; size];
    let framed_stored = ring.seal(&field(), &plain);
    let raw_stored = raw.encrypt(&nonce, plain.as_slice()).unwrap();
    let aad = field_aad();
    let with_aad = |msg| Payload { msg, aad: &aad };
    let raw_aad_stored = raw.encrypt(&nonce, with_aad(&plain)).unwrap();
    let cases: [(&str, &dyn Fn() -> usize); 7] = [
        ("seal framed", &|| {
            ring.seal(&field(), black_box(&plain)).len()
        }),
        ("seal raw", &|| {
            raw.encrypt(&nonce, black_box(plain.as_slice()))
                .unwrap()
                .len()
        }),
        ("seal raw+aad", &|| {
            raw.encrypt(&nonce, with_aad(black_box(&plain)))
                .unwrap()
                .len()
        }),
        ("open framed", &|| {
            ring.open(&field(), black_box(&framed_stored))
                .unwrap()
                .len()
        }),
        ("open raw", &|| {
            raw.decrypt(&nonce, black_box(raw_stored.as_slice()))
                .unwrap()
                .len()
        }),
        ("open raw+aad", &|| {
            raw.decrypt(&nonce, with_aad(black_box(&raw_aad_stored)))
                .unwrap()
                .len()
        }),
        ("getrandom 1536 B / 128", &|| {
            let mut pool = [0u8; NONCE_REFILL];
            getrandom::fill(&mut pool).unwrap();
            black_box(pool)[0].into()
        }),
    ];
    let mut times = vec![Vec::with_capacity(rounds); cases.len()];
    for _ in 0..rounds {
        for (i, (_, op)) in cases.iter().enumerate() {
            let start = thread_cpu_ns();
            let mut total = 0;
            for _ in 0..n {
                total += op();
            }
            black_box(total);
            times[i].push((thread_cpu_ns() - start) as f64 / n as f64);
        }
    }
    let mut medians: Vec<f64> = times.into_iter().map(median).collect();
    medians[6] /= 128.0;
    for (i, (name, _)) in cases.iter().enumerate() {
        println!("{name} {size}: {:.1} ns", medians[i]);
    }
    println!("seal framed/raw {size}: {:.2}", medians[0] / medians[1]);
    println!("open framed/raw {size}: {:.2}", medians[3] / medians[4]);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("cpu") {
        let arg = |i: usize, default: usize| {
            args.get(i)
                .map_or(default, |a| a.parse().expect("a number"))
        };
        return cpu(arg(1, 400), arg(2, 2000), arg(3, 101));
    }
    let usage = "usage: framing_cost seal|open framed|raw|raw+aad SIZE N";
    let [op, kind, size, n] = args.as_slice() else {
        panic!("{usage}");
    };
    let size: usize = size.parse().expect(usage);
    let n: usize = n.parse().expect(usage);

    let ring = KeyRing::new(DataKeyId(1), vec![DataKey::generate(DataKeyId(1))]).unwrap();
    let raw = Aes256Gcm::new(&Key::<Aes256Gcm>::from([3u8; 32]));
    let nonce = Nonce::from([9u8; 12]);
    let plain = vec![0x5au8; size];
    let framed_stored = ring.seal(&field(), &plain);
    let raw_stored = raw.encrypt(&nonce, plain.as_slice()).unwrap();
    let aad = field_aad();
    let with_aad = |msg| Payload { msg, aad: &aad };
    let raw_aad_stored = raw.encrypt(&nonce, with_aad(&plain)).unwrap();

    let mut total = 0usize;
    match (op.as_str(), kind.as_str()) {
        ("seal", "framed") => {
            for _ in 0..n {
                total += ring.seal(&field(), black_box(&plain)).len();
            }
        }
        ("seal", "raw") => {
            for _ in 0..n {
                total += raw
                    .encrypt(&nonce, black_box(plain.as_slice()))
                    .unwrap()
                    .len();
            }
        }
        ("seal", "raw+aad") => {
            for _ in 0..n {
                total += raw
                    .encrypt(&nonce, with_aad(black_box(&plain)))
                    .unwrap()
                    .len();
            }
        }
        ("open", "framed") => {
            for _ in 0..n {
                total += ring
                    .open(&field(), black_box(&framed_stored))
                    .unwrap()
                    .len();
            }
        }
        ("open", "raw") => {
            for _ in 0..n {
                total += raw
                    .decrypt(&nonce, black_box(raw_stored.as_slice()))
                    .unwrap()
                    .len();
            }
        }
        ("open", "raw+aad") => {
            for _ in 0..n {
                total += raw
                    .decrypt(&nonce, with_aad(black_box(&raw_aad_stored)))
                    .unwrap()
                    .len();
            }
        }
        _ => panic!("{usage}"),
    }
    black_box(total);
}
