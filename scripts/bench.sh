#!/usr/bin/env bash
# The benchmarks, side by side in one run, written to docs/BENCHMARKS.md
# (see that file for what each figure means and the targets).
#
#   scripts/bench.sh                      # the full run: about 10 minutes
#   SCALE="10000 100000 1000000" scripts/bench.sh --scale
#                                          # the growth table (scripts/bench/scale.sh)
#   PROFILE=release TENANTS=100000 scripts/bench.sh --settle
#                                          # only the lease settle run (scripts/bench/lease-settle.sh)
#   DURATION=2 TENANTS=200 ROTATION_ROWS=2000 CRITERION=0 OUT=target/bench.md scripts/bench.sh
#                                          # a smoke run: seconds
#
# Knobs (environment):
#   DURATION       seconds per load run (default 10)
#   TENANTS        seeded tenants for the API, pgbench and boot (default 10000)
#   ROTATION_ROWS  rows in the table during the rotation run (default 100000)
#   CONCURRENCY    load concurrencies (default "16 64")
#   PROFILE        release (default) or debug: which build of the binary
#   VIBEE_SESSIONS_BIN / SEED_BIN  prebuilt binaries instead of building
#   CRITERION      1 (default) runs `cargo bench --bench crypto`; 0 skips it
#   OUT            where the report goes (default docs/BENCHMARKS.md)
#   BENCH_RUST_LOG the server's RUST_LOG (default info, as in production)
#   PERF_RECORD    a path: `perf record -g` the server during run PERF_RUN (default get_c64)
#   ROTATE_BUSY_ARGS  extra `rotate` flags for the rotation under load
#                  (e.g. "--batch-size 200 --pause-ms 10" to go easier on the API)
#   BENCH_DB       the database to create and drop (default vs_bench)
#   BENCH_NOTES    a markdown file appended to the report
# Exits non-zero when a run saw errors (non-2xx, socket errors), the server
# logged an ERROR, or boot missed tenants: the CI smoke relies on it.
#   DATABASE_URL / TEST_DATABASE_URL  the server to use (default the local one);
#                  the bench creates and drops its own database, $BENCH_DB.
set -euo pipefail
cd "$(dirname "$0")/.."
# The growth run (every figure at several store sizes): scripts/bench/scale.sh.
if [ "${1:-}" = --scale ]; then
  shift
  exec bash scripts/bench/scale.sh "$@"
fi
# The lease settle run alone (scripts/bench/lease-settle.sh).
if [ "${1:-}" = --settle ]; then
  shift
  exec bash scripts/bench/lease-settle.sh "$@"
fi
root=$(pwd)
source scripts/lib/postgres.sh

duration=${DURATION:-10}
tenants=${TENANTS:-10000}
rotation_rows=${ROTATION_ROWS:-100000}
concurrency=${CONCURRENCY:-16 64}
profile=${PROFILE:-release}
criterion=${CRITERION:-1}
out=${OUT:-docs/BENCHMARKS.md}
db=${BENCH_DB:-vs_bench}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
say() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

source scripts/bench/prepare.sh   # tools (wrk, pgbench, psql), PostgreSQL, the binaries

# --- database ------------------------------------------------------------
work=$(mktemp -d)
scratch_cleanup() { rm -rf "$work"; }
source "$root/scripts/lib/scratch.sh"
source "$root/scripts/lib/server.sh"
scratch_database "$admin_url" "$db" "$bin"
sql() { pg_run psql "$DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 "$@"; }
say "seeding $tenants tenants"
"$seed" "$tenants" 0 2>&1 | sed 's/^/  /' >&2
TOKEN=$(server_token "$bin" bench)
export BENCH_TOKEN=$TOKEN BENCH_TENANTS=$tenants BENCH_LUA_DIR=$root/scripts/bench

# The floor's upsert table (a copy, so pgbench's random bytes never meet the
# API's decryption) and the replaced design's table: pgp_sym_encrypt with the
# key in the database. One ciphertext per column serves every row: pgcrypto
# binds nothing to the row, and the decryption cost is the same.
sql -c "CREATE EXTENSION IF NOT EXISTS pgcrypto" >/dev/null
sql >/dev/null <<SQL
CREATE TABLE floor_sessions (LIKE user_sessions INCLUDING ALL);
INSERT INTO floor_sessions SELECT * FROM user_sessions;
CREATE TABLE legacy_key (key text NOT NULL);
INSERT INTO legacy_key VALUES (encode(gen_random_bytes(24), 'base64'));
CREATE TABLE legacy_sessions (user_id text PRIMARY KEY, api_id integer, api_hash bytea, phone bytea, session_data bytea);
WITH k AS (SELECT key FROM legacy_key),
     c AS (SELECT pgp_sym_encrypt('0123456789abcdef0123456789abcdef', k.key) AS h,
                  pgp_sym_encrypt('+15550000001', k.key) AS p,
                  pgp_sym_encrypt_bytea(gen_random_bytes(350), k.key) AS d FROM k)
INSERT INTO legacy_sessions SELECT 'bench' || lpad(i::text, 7, '0'), 1000 + i, c.h, c.p, c.d
  FROM generate_series(0, $tenants - 1) AS i, c;
VACUUM ANALYZE;
SQL

# --- the server ----------------------------------------------------------
server_start "$bin" "$work/server.log" RUST_LOG="${BENCH_RUST_LOG:-info}" -- --no-migrate \
  || { say "the server did not start"; exit 1; }
base=$server_url
curl -fs -H "Authorization: Bearer $TOKEN" "$base/api/v1/users/bench0000000/session" >/dev/null \
  || { say "a seeded session does not read back"; exit 1; }

# --- load ----------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R   # name -> "rps p50 p99 errors requests"
source scripts/bench/runs.sh   # wrk_run, pgbench_run, rss_kib, peak_rss_kib

# Warm-up: connections, caches, prepared statements.
wrk -t2 -c16 -d1s -s scripts/bench/get.lua "$base" >/dev/null
rss_idle=$(rss_kib)

for c in $concurrency; do
  wrk_run "get_c$c" get.lua "$c"
  wrk_run "upsert_c$c" upsert.lua "$c"
  wrk_run "list_c$c" list.lua "$c"
  pgbench_run "pg_lookup_c$c" lookup.sql "$c"
  pgbench_run "pg_upsert_c$c" upsert.sql "$c"
  pgbench_run "pg_crypto_c$c" pgcrypto.sql "$c"
done
rss_peak=$(peak_rss_kib)

# --- boot ----------------------------------------------------------------
say "boot --all for $tenants tenants vs psql"
t0=$(date +%s.%N)
"$bin" boot --all --format json >"$work/boot.json"
t1=$(date +%s.%N)
sql -c "SELECT id, user_id, session_id, username, api_id, api_hash_encrypted, phone_encrypted, session_data_encrypted, data_key_id, is_active, is_authorized, digital_twin_enabled, auto_reply_enabled, target_chats, last_seen_at, version, created_at, updated_at FROM user_sessions WHERE is_active ORDER BY user_id" >"$work/psql.out"
t2=$(date +%s.%N)
boot_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b-a}')
psql_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.3f", b-a}')
booted=$(grep -o '"user_id"' "$work/boot.json" | wc -l)
say "boot ${boot_s}s ($booted tenants), psql ${psql_s}s"

# --- rotation ------------------------------------------------------------
extra=$((rotation_rows - tenants))
if [ "$extra" -gt 0 ]; then
  say "seeding $extra more rows for the rotation"
  "$seed" "$extra" "$tenants" 2>&1 | sed 's/^/  /' >&2
  sql -c "VACUUM ANALYZE user_sessions" >/dev/null
fi
say "rotating $rotation_rows rows, no other load"
RUST_LOG=warn "$bin" rotate --grace-ms 0 </dev/null >"$work/rotate-alone.log" 2>&1
rot_alone=$(sed -nE 's/.*\(([0-9]+) rows\/s\).*/\1/p' "$work/rotate-alone.log" | head -1)
say "rotation alone: ${rot_alone:-?} rows/s"
rotation_c=16
wrk_run rot_idle get.lua "$rotation_c"
say "rotating $rotation_rows rows, repeatedly, under GET load (c=$rotation_c)"
(
  while :; do
    # shellcheck disable=SC2086
    RUST_LOG=warn "$bin" rotate --grace-ms 0 ${ROTATE_BUSY_ARGS:-} </dev/null >>"$work/rotate.log" 2>&1 || break
    [ -e "$work/stop-rotating" ] && break
  done
) &
rot_pid=$!
sleep 0.3
wrk_run rot_busy get.lua "$rotation_c"
touch "$work/stop-rotating"
wait "$rot_pid" || true
rot_rates=$(sed -nE 's/.*\(([0-9]+) rows\/s\).*/\1/p' "$work/rotate.log")
rot_rows=$(sed -nE 's/^rotation finished: ([0-9]+) rows.*/\1/p' "$work/rotate.log" | head -1)
rot_first=$(echo "$rot_rates" | head -1)
rot_runs=$(echo "$rot_rates" | grep -c . || true)
rot_best=$(echo "$rot_rates" | sort -n | tail -1)
say "rotation: runs=$rot_runs first=${rot_first:-?} rows/s best=${rot_best:-?} rows/s"

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
server_pid=
errors_in_log=$(grep -c -E ' ERROR ' "$work/server.log" || true)

# --- crypto --------------------------------------------------------------
crypto_rows=""
if [ "$criterion" = 1 ]; then
  say "criterion: cargo bench --bench crypto"
  cargo bench --locked --bench crypto -- --noplot 2>/dev/null | tee "$work/criterion.txt" >/dev/null || true
  # Lines like "seal/framed/400  time: [1.1 µs 1.2 µs 1.3 µs]" -> name median unit
  crypto_rows=$(awk '
    /%/ { next }
    /^(seal|open)\/[a-z]+\/[0-9]+/ { name=$1 }
    /time:/ && name != "" { gsub(/\[/, ""); for (i=1;i<=NF;i++) if ($i=="time:") { v=$(i+3); u=$(i+4) }; print name, v, u; name="" }
  ' "$work/criterion.txt")
fi

source "$root/scripts/bench/leases.sh"
source "$root/scripts/bench/fence.sh"
source "$root/scripts/bench/pooler.sh"

# --- report --------------------------------------------------------------
f() { echo "${R[$1]:-0 0 0 0 0}" | awk -v k="$2" '{print $k}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 == 0) print "n/a"; else printf "%.2f", a/b }'; }
ok() { if [ "$1" = 1 ]; then echo "met"; else echo "**missed**"; fi; }
cmp() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { if (op==">=") print (a+0>=b+0)?1:0; else print (a+0<=b+0)?1:0 }'; }

cpu=$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
pgver=$(sql -c "SHOW server_version")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty."
  echo "Load generator (wrk, pgbench, psql), server and PostgreSQL all run on this one machine,"
  echo "so every figure is a ratio against a reference measured in the same run."
  echo
  echo "- machine: $(nproc) cores, $cpu, $mem; PostgreSQL $pgver; $(uname -sr)"
  echo "- load average (1/5/15 min) when the load runs began: $load_start; when they ended: $load_end (anything above ~2 means other work shared the 2 cores)"
  echo "- command: \`DURATION=$duration TENANTS=$tenants ROTATION_ROWS=$rotation_rows CONCURRENCY=\"$concurrency\" PROFILE=$profile scripts/bench.sh\`"
  echo "- data: $tenants tenants (32-hex api_hash, phone, a 350-byte session blob, all sealed as the service seals them); $rotation_rows rows for the rotation"
  echo "- load: wrk -t2, ${duration}s per run, random user_ids (scripts/bench/*.lua); pgbench -M prepared -j 2 (scripts/bench/*.sql); server RUST_LOG=${BENCH_RUST_LOG:-info}"
  echo
  echo "## API vs the database floor and the replaced design"
  echo
  echo "| run | c | req/s | p50 ms | p99 ms | errors | vs floor | vs pgcrypto |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in $concurrency; do
    echo "| GET /users/{user_id}/session (credentials) | $c | $(f get_c$c 1) | $(f get_c$c 2) | $(f get_c$c 3) | $(f get_c$c 4) | $(ratio "$(f get_c$c 1)" "$(f pg_lookup_c$c 1)") | $(ratio "$(f get_c$c 1)" "$(f pg_crypto_c$c 1)") |"
    echo "| POST /sessions (upsert) | $c | $(f upsert_c$c 1) | $(f upsert_c$c 2) | $(f upsert_c$c 3) | $(f upsert_c$c 4) | $(ratio "$(f upsert_c$c 1)" "$(f pg_upsert_c$c 1)") | |"
    echo "| GET /sessions?limit=100 (list) | $c | $(f list_c$c 1) | $(f list_c$c 2) | $(f list_c$c 3) | $(f list_c$c 4) | | |"
    echo "| pgbench: single-row lookup (floor) | $c | $(f pg_lookup_c$c 1) | $(f pg_lookup_c$c 2) | $(f pg_lookup_c$c 3) | $(f pg_lookup_c$c 4) | 1 | |"
    echo "| pgbench: single-row upsert (floor) | $c | $(f pg_upsert_c$c 1) | $(f pg_upsert_c$c 2) | $(f pg_upsert_c$c 3) | $(f pg_upsert_c$c 4) | 1 | |"
    echo "| pgbench: lookup with pgp_sym_decrypt (replaced design) | $c | $(f pg_crypto_c$c 1) | $(f pg_crypto_c$c 2) | $(f pg_crypto_c$c 3) | $(f pg_crypto_c$c 4) | | 1 |"
  done
  echo
  echo "## Rotation, boot, memory"
  echo
  echo "| what | figure | reference | ratio |"
  echo "|---|---|---|---|"
  echo "| rotate ${rot_rows:-?} rows, no other load | ${rot_alone:-?} rows/s | | |"
  echo "| rotate ${rot_rows:-?} rows under GET load c=$rotation_c${ROTATE_BUSY_ARGS:+, rotate $ROTATE_BUSY_ARGS} (first of $rot_runs runs; best ${rot_best:-?}) | ${rot_first:-?} rows/s | | |"
  echo "| GET p99 during rotation (c=$rotation_c) | $(f rot_busy 3) ms ($(f rot_busy 1) req/s, $(f rot_busy 4) errors) | idle $(f rot_idle 3) ms ($(f rot_idle 1) req/s) | $(ratio "$(f rot_busy 3)" "$(f rot_idle 3)") |"
  echo "| boot --all --format json ($booted tenants) | $(printf '%.3f' "$boot_s") s | psql select $(printf '%.3f' "$psql_s") s | $(ratio "$boot_s" "$psql_s") |"
  echo "| server RSS | peak (VmHWM) $((rss_peak / 1024)) MiB after all load runs | $((rss_idle / 1024)) MiB after warm-up | |"
  echo "| ERROR lines in the server log | $errors_in_log | | |"
  if [ -n "$crypto_rows" ]; then
    echo
    echo "## Crypto (criterion, \`cargo bench --bench crypto\`; median)"
    echo
    echo "| bench | time |"
    echo "|---|---|"
    echo "$crypto_rows" | while read -r n v u; do echo "| $n | $v $u |"; done
  fi
  echo
  echo "## Targets"
  echo
  cmax=$(echo $concurrency | awk '{print $NF}')
  g=$(ratio "$(f get_c$cmax 1)" "$(f pg_lookup_c$cmax 1)")
  u=$(ratio "$(f upsert_c$cmax 1)" "$(f pg_upsert_c$cmax 1)")
  echo "| target | measured | |"
  echo "|---|---|---|"
  echo "| credentials GET >= 0.25 x pgbench lookup (c=$cmax) | $g | $(ok "$(cmp "$g" ">=" 0.25)") |"
  echo "| credentials GET p99 < 10 ms (c=$cmax) | $(f get_c$cmax 3) ms | $(ok "$(cmp "$(f get_c$cmax 3)" "<=" 10)") |"
  echo "| upsert >= 0.5 x pgbench upsert (c=$cmax) | $u | $(ok "$(cmp "$u" ">=" 0.5)") |"
  echo "| rotation >= 30,000 rows/s (alone) | ${rot_alone:-0} | $(ok "$(cmp "${rot_alone:-0}" ">=" 30000)") |"
  rr=$(ratio "$(f rot_busy 3)" "$(f rot_idle 3)")
  echo "| GET p99 during rotation <= 2 x idle | $rr | $(ok "$(cmp "$rr" "<=" 2)") |"
  br=$(ratio "$boot_s" "$psql_s")
  echo "| boot <= 2 x psql select | $br | $(ok "$(cmp "$br" "<=" 2)") |"
  echo "| server peak RSS <= 64 MiB | $((rss_peak / 1024)) MiB | $(ok "$(cmp "$rss_peak" "<=" 65536)") |"
  if [ -n "$crypto_rows" ]; then
    fr=$(echo "$crypto_rows" | awk '
      function us(v,u) { return u=="ns" ? v/1000 : (u=="ms" ? v*1000 : v) }
      $1=="seal/framed/400" {a=us($2,$3)} $1=="seal/raw/400" {b=us($2,$3)}
      $1=="open/framed/400" {c=us($2,$3)} $1=="open/raw/400" {d=us($2,$3)}
      END { if (b>0 && d>0) printf "%.2f %.2f", a/b, c/d; else print "n/a n/a" }')
    echo "| crypto framing <= 1.2 x raw AES-256-GCM at 400 B (seal, open) | ${fr% *}, ${fr#* } | $(ok "$(cmp "$(echo "$fr" | awk '{print ($1>$2)?$1:$2}')" "<=" 1.2)") |"
  fi
  echo
  echo "The figures before these, step by step, with profiles and experiments:"
  echo "\`docs/perf/NOTES.md\`. What is measured and why: \`docs/DESIGN.md\`."
  if [ -n "${BENCH_NOTES:-}" ] && [ -f "$BENCH_NOTES" ]; then
    echo
    cat "$BENCH_NOTES"
  fi
} >"$out"
cat "$work/leases.md" "$work/fence.md" "$work/pooler.md" >>"$out"
say "wrote $out"
cat "$out"
# For CI: a run that saw an error (non-2xx, socket error, no result) fails.
bad=0
for k in "${!R[@]}"; do
  e=$(echo "${R[$k]}" | awk '{print $4}')
  if [ "$e" != 0 ]; then say "run $k saw errors: ${R[$k]}"; bad=1; fi
done
[ "$errors_in_log" = 0 ] || { say "the server logged $errors_in_log ERROR lines"; bad=1; }
[ "$booted" = "$tenants" ] || { say "boot returned $booted tenants, not $tenants"; bad=1; }
[ -z "${bad_leases:-}" ] && [ -z "${bad_fence:-}" ] || bad=1
[ -z "${bad_pooler:-}" ] || bad=1
exit $bad
