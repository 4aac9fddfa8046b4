#!/usr/bin/env bash
# Start-up with a transit master key against a local one, side by side in one
# run, for 1 and for 100 live data keys; then the steady state (GETs) of both,
# with the count of transit calls made while serving them (it must stay 0).
#
#   scripts/transit-bench.sh                  # debug build (crypto crates are optimised even there)
#   PROFILE=release scripts/transit-bench.sh  # optimised build
#   RUNS=20 scripts/transit-bench.sh          # starts per configuration (default 10)
#
# The start-up time is from spawning `vibee-sessions serve --no-migrate` to its
# first 200 on /readyz. A real `bao server -dev` on loopback (scripts/lib/openbao.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/openbao.sh

profile=${PROFILE:-debug}
runs=${RUNS:-10}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
ensure_postgres "$admin_url"
bao=$(openbao_bin)

flags=()
[ "$profile" = release ] && flags=(--release)
cargo build "${flags[@]}" --bin vibee-sessions
bin=$PWD/target/$profile/vibee-sessions

work=$(mktemp -d)
bao_pid=
prefix="vs_bench_transit_$$"
scratch_cleanup() {
  [ -n "$bao_pid" ] && kill "$bao_pid" 2>/dev/null
  for d in local1 local100 transit1 transit100; do
    pg_run psql "$admin_url" -XAtqc "DROP DATABASE IF EXISTS ${prefix}_$d WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
source scripts/lib/scratch.sh
scratch_database "$admin_url" "${prefix}_local1" "$bin"
local_key=$MASTER_KEY
db_url() { printf '%s' "$admin_url" | sed -E "s#^([a-z]+://[^/?]*)(/[^?]*)?#\1/$1#"; }

# The engine.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOME=$work "$bao" server -dev -dev-root-token-id=bench -dev-listen-address=127.0.0.1:$port >"$work/bao.log" 2>&1 &
bao_pid=$!
export BAO_ADDR=http://127.0.0.1:$port BAO_TOKEN=bench
for _ in $(seq 100); do curl -fs "$BAO_ADDR/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.1; done
HOME=$work "$bao" secrets enable transit >/dev/null
HOME=$work "$bao" write -f transit/keys/bench type=aes256-gcm96 >/dev/null

# 1 data key: the first start creates it.
RUST_LOG=warn "$bin" session list >/dev/null
# 100 live data keys: 99 rotations (each retires the empty old key), then every
# key made live again (they are still wrapped under the same master key).
pg_run psql "$admin_url" -XAtqc "CREATE DATABASE ${prefix}_local100 TEMPLATE ${prefix}_local1" >/dev/null
for _ in $(seq 99); do
  DATABASE_URL=$(db_url "${prefix}_local100") RUST_LOG=warn "$bin" rotate --grace-ms 0 >/dev/null </dev/null
done
pg_run psql "$(db_url "${prefix}_local100")" -XAtqc "UPDATE encryption_keys SET state = 'active', retired_at = NULL WHERE state = 'retired'" >/dev/null
for n in 1 100; do
  pg_run psql "$admin_url" -XAtqc "CREATE DATABASE ${prefix}_transit$n TEMPLATE ${prefix}_local$n" >/dev/null
  DATABASE_URL=$(db_url "${prefix}_transit$n") VAULT_ADDR=$BAO_ADDR VAULT_TOKEN=bench RUST_LOG=warn \
    "$bin" rotate-master --new-transit-key bench >/dev/null
done

export BENCH_BIN=$bin BENCH_RUNS=$runs BENCH_LOCAL_KEY=$local_key BENCH_BAO_ADDR=$BAO_ADDR
export BENCH_URL_LOCAL1=$(db_url "${prefix}_local1") BENCH_URL_LOCAL100=$(db_url "${prefix}_local100")
export BENCH_URL_TRANSIT1=$(db_url "${prefix}_transit1") BENCH_URL_TRANSIT100=$(db_url "${prefix}_transit100")
unset MASTER_KEY DATABASE_URL BAO_TOKEN
python3 - <<'PY'
import http.client, json, os, socket, statistics, subprocess, time

bin_, runs = os.environ["BENCH_BIN"], int(os.environ["BENCH_RUNS"])
def env_for(kind, n):
    e = {"PATH": os.environ["PATH"], "RUST_LOG": "warn",
         "DATABASE_URL": os.environ[f"BENCH_URL_{kind.upper()}{n}"]}
    if kind == "local":
        e["MASTER_KEY"] = os.environ["BENCH_LOCAL_KEY"]
    else:
        e.update(VAULT_ADDR=os.environ["BENCH_BAO_ADDR"], VAULT_TOKEN="bench", MASTER_KEY_TRANSIT_KEY="bench")
    return e

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse(); body = r.read(); c.close()
    return r.status, body

def start(kind, n):
    port = free_port()
    e = env_for(kind, n); e["LISTEN_ADDR"] = f"127.0.0.1:{port}"
    t0 = time.perf_counter()
    p = subprocess.Popen([bin_, "serve", "--no-migrate"], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        try:
            if get(port, "/readyz")[0] == 200:
                break
        except OSError:
            pass
        if p.poll() is not None:
            raise SystemExit(f"serve ({kind}, {n} keys) exited: {p.stderr.read().decode()}")
        time.sleep(0.001)
    return time.perf_counter() - t0, p, port

configs = [(k, n) for n in (1, 100) for k in ("local", "transit")]
times = {c: [] for c in configs}
for _ in range(runs):
    for c in configs:          # interleaved: drift hits every configuration alike
        t, p, _ = start(*c)
        p.terminate(); p.wait()
        times[c].append(t)

print(f"start-up, spawn to first /readyz 200, median of {runs} (min):")
for n in (1, 100):
    loc, tr = statistics.median(times[("local", n)]), statistics.median(times[("transit", n)])
    print(f"  {n:>3} data keys: local {loc*1000:7.1f} ms ({min(times[('local', n)])*1000:.1f})   "
          f"transit {tr*1000:7.1f} ms ({min(times[('transit', n)])*1000:.1f})   transit/local {tr/loc:.2f}x")

# Steady state: reads of /readyz-free API calls, and the transit calls they cause.
def token(kind, n):
    out = subprocess.run([bin_, "token", "create", "--name", f"bench-{kind}-{n}-{time.time_ns()}",
                          "--scope", "sessions:read,sessions:write,admin"],
                         env=env_for(kind, n), capture_output=True, text=True, check=True)
    return out.stdout.strip()

def transit_calls(port):
    body = get(port, "/metrics")[1].decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if l.startswith("vibee_transit_requests_total") and 'op="health"' not in l)

print("steady state, 100 data keys: 1000 x (PUT then GET of a session), one connection each:")
for kind in ("local", "transit"):
    _, p, port = start(kind, 100)
    h = {"Authorization": "Bearer " + token(kind, 100), "Content-Type": "application/json"}
    before = transit_calls(port)
    lat = []
    for i in range(1000):
        body = json.dumps({"user_id": f"u{i}", "api_id": 1, "api_hash": "0123456789abcdef0123456789abcdef"})
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/api/v1/sessions", body=body, headers=h); c.getresponse().read(); c.close()
        t0 = time.perf_counter()
        status, _ = get(port, f"/api/v1/sessions/u{i}", h)
        lat.append(time.perf_counter() - t0)
        assert status == 200, status
    after = transit_calls(port)
    p.terminate(); p.wait()
    lat.sort()
    print(f"  {kind:<8} GET median {statistics.median(lat)*1000:.2f} ms, p99 {lat[989]*1000:.2f} ms; "
          f"transit calls while serving: {after - before:.0f}")
PY
