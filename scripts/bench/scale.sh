#!/usr/bin/env bash
# How the figures move as the store grows: every size in $SCALE gets a fresh
# database seeded as the service seals (examples/seed_sessions), a fresh
# server, and the same runs; one table, each figure with its ratio to the
# smallest size. Run through `scripts/bench.sh --scale`.
#
#   SCALE="10000 100000 1000000" scripts/bench.sh --scale     # the growth table
#   PROFILE=debug SCALE="100 300" DURATION=1 OUT=target/scale.md scripts/bench.sh --scale
#                                                              # the CI smoke: seconds
#
# Knobs: SCALE (default "10000 100000"), DURATION (seconds per load run,
# default 10), CONCURRENCY (GET/upsert/lookup, default 64), PROFILE,
# VIBEE_SESSIONS_BIN / SEED_BIN, BENCH_DB (default vs_scale), OUT (default
# docs/perf/SCALE.md), BENCH_RUST_LOG.
# Exits non-zero when a run saw errors, the server logged an ERROR, or boot
# missed tenants.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
source scripts/lib/postgres.sh

sizes=${SCALE:-10000 100000}
duration=${DURATION:-10}
c=${CONCURRENCY:-64}
profile=${PROFILE:-release}
out=${OUT:-docs/perf/SCALE.md}
db=${BENCH_DB:-vs_scale}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
say() { printf '[scale %s] %s\n' "$(date +%T)" "$*" >&2; }

source scripts/bench/prepare.sh
[ -x /usr/bin/time ] || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
  else
    say "missing /usr/bin/time (Debian: sudo apt-get install time)"
    exit 1
  fi
}

work=$(mktemp -d)
# Between sizes the database goes, the work directory stays.
between=
scratch_cleanup() { [ -n "$between" ] || rm -rf "$work"; }
source scripts/lib/scratch.sh
source scripts/lib/server.sh
source scripts/bench/runs.sh
sql() { pg_run psql "$DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 "$@"; }
declare -A R   # wrk/pgbench runs: name -> "rps p50 p99 errors requests"
declare -A F   # figures: "size key" -> value
bad=0
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# The median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

for n in $sizes; do
  say "== $n tenants"
  scratch_database "$admin_url" "$db" "$bin"
  t0=$(date +%s.%N)
  "$seed" "$n" 0 2>&1 | sed 's/^/  /' >&2
  sql -c "VACUUM ANALYZE" >/dev/null
  F[$n seed_s]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}')
  # Bytes per tenant as seeded: the table with its indexes and TOAST.
  F[$n bytes]=$(sql -c "SELECT pg_total_relation_size('user_sessions') / $n")
  TOKEN=$(server_token "$bin" scale)
  export BENCH_TOKEN=$TOKEN BENCH_TENANTS=$n BENCH_LUA_DIR=$root/scripts/bench
  tenants=$n
  server_start "$bin" "$work/server-$n.log" RUST_LOG="${BENCH_RUST_LOG:-info}" -- --no-migrate \
    || { say "the server did not start"; exit 1; }
  base=$server_url
  wrk -t2 -c16 -d1s -s scripts/bench/get.lua "$base" >/dev/null

  wrk_run "get_$n" get.lua "$c"
  pgbench_run "pg_lookup_$n" lookup.sql "$c"
  wrk_run "upsert_$n" upsert.lua "$c"
  wrk_run "list_$n" list.lua 16
  # stats: one request at a time, the median of 5. Computed (no-cache: a
  # scan of the whole table each), then served from the shared copy.
  stats_ms() {
    for _ in 1 2 3 4 5; do
      curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$@" "$base/api/v1/stats"
    done | median | awk '{printf "%.1f", $1 * 1000}'
  }
  F[$n stats_ms]=$(stats_ms -H 'Cache-Control: no-cache')
  F[$n stats_cached_ms]=$(stats_ms)

  # boot --all: wall time and the loader's peak RSS (it streams: flat RSS).
  /usr/bin/time -f '%e %M' -o "$work/boot-time" "$bin" boot --all --format json >"$work/boot.json"
  read -r boot_s boot_rss <"$work/boot-time"
  F[$n boot_s]=$boot_s
  F[$n boot_rss_kib]=$boot_rss
  booted=$(grep -o '"user_id"' "$work/boot.json" | wc -l)
  rm -f "$work/boot.json"
  if [ "$booted" != "$n" ]; then say "boot returned $booted tenants, not $n"; bad=1; fi

  RUST_LOG=warn "$bin" rotate --grace-ms 0 </dev/null >"$work/rotate-$n.log" 2>&1
  F[$n rotate]=$(sed -nE 's/.*\(([0-9]+) rows\/s\).*/\1/p' "$work/rotate-$n.log" | head -1)

  F[$n server_rss_kib]=$(peak_rss_kib)
  kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
  server_pid=
  errs=$(grep -c -E ' ERROR ' "$work/server-$n.log" || true)
  if [ "$errs" != 0 ]; then say "the server logged $errs ERROR lines at $n"; bad=1; fi
  F[$n db_bytes]=$(sql -c "SELECT pg_database_size(current_database()) / $n")
  between=1
  scratch_exit
  between=
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------
f() { echo "${R[$1]:-0 0 0 0 0}" | awk -v k="$2" '{print $k}'; }
for n in $sizes; do
  F[$n get]=$(f "get_$n" 1); F[$n get_p99]=$(f "get_$n" 3)
  F[$n lookup]=$(f "pg_lookup_$n" 1); F[$n upsert]=$(f "upsert_$n" 1)
  F[$n list]=$(f "list_$n" 1); F[$n list_p50]=$(f "list_$n" 2)
done
first=${sizes%% *}
# A figure with its ratio to the smallest size's.
cell() { # size key [format]
  awk -v v="${F[$1 $2]:-0}" -v b="${F[$first $2]:-0}" -v fmt="${3:-%.1f}" \
    'BEGIN { printf fmt, v; if (b+0 > 0) printf " (%.2fx)", v/b }'
}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
  echo "# Growth: the figures at several store sizes"
  echo
  echo "Written by \`scripts/bench.sh --scale\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty."
  echo
  echo "- command: \`SCALE=\"$sizes\" DURATION=$duration CONCURRENCY=$c PROFILE=$profile scripts/bench.sh --scale\`"
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); load average (1/5/15 min) at the start: $load_start; at the end: $load_end"
  echo "- each size: a fresh database seeded with examples/seed_sessions (sealed as the service seals, 350-byte blobs), a fresh server; wrk -t2 ${duration}s per run, random user_ids; in brackets the ratio to $first tenants"
  echo "- stats: the API shares one computation (a scan of user_sessions) among its callers, at most one per STATS_MAX_AGE_SECS (10 s); \"computed\" asks for a new one (Cache-Control: no-cache), \"cached\" is what a polling console gets"
  echo
  echo "| figure | $(echo "$sizes" | sed 's/ / | /g') |"
  echo "|---|$(for _ in $sizes; do printf -- '---|'; done)"
  row() { # label key [format]
    printf '| %s |' "$1"
    for n in $sizes; do printf ' %s |' "$(cell "$n" "$2" "${3:-%.1f}")"; done
    echo
  }
  row "credentials GET req/s (c=$c)" get
  row "credentials GET p99 ms (c=$c)" get_p99 "%.2f"
  row "pgbench lookup tps (c=$c, the floor)" lookup
  row "upsert req/s (c=$c)" upsert
  row "list one page of 100: req/s (c=16)" list
  row "list one page of 100: p50 ms (c=16)" list_p50 "%.2f"
  row "GET /api/v1/stats computed (no-cache) ms (median of 5)" stats_ms
  row "GET /api/v1/stats cached ms (median of 5)" stats_cached_ms "%.2f"
  row "boot --all --format json, s" boot_s "%.2f"
  row "boot loader peak RSS KiB" boot_rss_kib "%d"
  row "rotation rows/s (alone)" rotate "%d"
  row "server peak RSS KiB" server_rss_kib "%d"
  row "user_sessions bytes per tenant (as seeded)" bytes "%d"
  row "database bytes per tenant (after the runs)" db_bytes "%d"
  row "seeding s" seed_s
} >"$out"
say "wrote $out"
cat "$out"
for k in "${!R[@]}"; do
  e=$(echo "${R[$k]}" | awk '{print $4}')
  if [ "$e" != 0 ]; then say "run $k saw errors: ${R[$k]}"; bad=1; fi
done
exit $bad
