//! Field seal/open (our format: version, key id, random nonce, AAD binding
//! table/column/row) vs raw AES-256-GCM on the same bytes (fixed nonce, no
//! AAD, no header): the cost of the framing. `cargo bench --bench crypto`.

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vibee_sessions::crypto::{DataKey, DataKeyId, FieldRef, KeyRing};

const SIZES: [usize; 3] = [32, 400, 4096];
const ROW_ID: [u8; 16] = [7; 16];

fn field() -> FieldRef<'static> {
    FieldRef::new("user_sessions", "session_data_encrypted", &ROW_ID)
}

fn benches(c: &mut Criterion) {
    let ring = KeyRing::new(DataKeyId(1), vec![DataKey::generate(DataKeyId(1))]).unwrap();
    // The raw cipher gets a random key of its own: no key bytes leave the ring.
    let mut raw_key = [0u8; 32];
    getrandom::fill(&mut raw_key).unwrap();
    let raw = Aes256Gcm::new(&Key::<Aes256Gcm>::from(raw_key));
    let nonce = Nonce::from([9u8; 12]);

    let mut seal = c.benchmark_group("seal");
    for size in SIZES {
        let plain = vec![0x5au8; size];
        seal.throughput(Throughput::Bytes(size as u64));
        seal.bench_with_input(BenchmarkId::new("framed", size), &plain, |b, p| {
            b.iter(|| ring.seal(&field(), black_box(p)))
        });
        seal.bench_with_input(BenchmarkId::new("raw", size), &plain, |b, p| {
            b.iter(|| raw.encrypt(&nonce, black_box(p.as_slice())).unwrap())
        });
    }
    seal.finish();

    let mut open = c.benchmark_group("open");
    for size in SIZES {
        let plain = vec![0x5au8; size];
        let framed = ring.seal(&field(), &plain);
        let sealed_raw = raw.encrypt(&nonce, plain.as_slice()).unwrap();
        open.throughput(Throughput::Bytes(size as u64));
        open.bench_with_input(BenchmarkId::new("framed", size), &framed, |b, s| {
            b.iter(|| ring.open(&field(), black_box(s)).unwrap())
        });
        open.bench_with_input(BenchmarkId::new("raw", size), &sealed_raw, |b, s| {
            b.iter(|| raw.decrypt(&nonce, black_box(s.as_slice())).unwrap())
        });
    }
    open.finish();
}

criterion_group! {
    name = crypto;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(crypto);
