#!/usr/bin/env bash
# Before/after in one run: credentials GET (c=64) of server binaries given as
# variables, on one seeded database, alternating, with pgbench's lookup once
# per round as the floor. Extra serve settings per variant in V_ENV.
#
#   A=old/vibee-sessions B=new/vibee-sessions scripts/bench/ab.sh
#   A=... B=... X=$B X_ENV=AUDIT_MAX_IN_FLIGHT=1 VARIANTS="A B X" scripts/bench/ab.sh
#
# Knobs: TENANTS (10000), DURATION (10), ROUNDS (2), CONNS (64), SEED_BIN.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
source scripts/lib/postgres.sh
say() { printf '[ab %s] %s\n' "$(date +%T)" "$*" >&2; }
duration=${DURATION:-10}; tenants=${TENANTS:-10000}; c=${CONNS:-64}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
work=$(mktemp -d)
scratch_cleanup() { rm -rf "$work"; }
source scripts/lib/scratch.sh
source scripts/lib/server.sh
source scripts/bench/runs.sh
declare -A R
# "server_ticks postgres_ticks": CPU (user+system) of the server process and
# of every postgres process so far, in clock ticks.
cpu_ticks() {
  local server=0 pg=0 f st
  read -r -a st <"/proc/$1/stat" && server=$((st[13] + st[14]))
  for f in /proc/[0-9]*/stat; do
    read -r -a st <"$f" 2>/dev/null || continue
    [ "${st[1]}" = "(postgres)" ] && pg=$((pg + st[13] + st[14]))
  done
  echo "$server $pg"
}
scratch_database "$admin_url" vs_ab "$B"
"${SEED_BIN:-$root/target/release/examples/seed_sessions}" "$tenants" 0 >&2
pg_run psql "$DATABASE_URL" -XAtqc "VACUUM ANALYZE"
TOKEN=$(server_token "$B" ab)
export BENCH_TOKEN=$TOKEN BENCH_TENANTS=$tenants BENCH_LUA_DIR=$root/scripts/bench
say "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "${ROUNDS:-2}"); do
  for v in ${VARIANTS:-A B}; do
    envv=${v}_ENV
    server_start "${!v}" "$work/server-$v.log" RUST_LOG=info ${!envv:-} -- --no-migrate
    base=$server_url
    wrk -t2 -c16 -d1s -s scripts/bench/get.lua "$base" >/dev/null
    pp=; if [ -n "${PERF_B:-}" ] && [ $v = B ]; then perf record -F 499 -g -p "$server_pid" -o "$PERF_B" -- sleep "$duration" >/dev/null 2>&1 & pp=$!; fi
    cpu0=$(cpu_ticks "$server_pid")
    wrk_run "get_${v}_$round" get.lua "$c"
    cpu1=$(cpu_ticks "$server_pid")
    # CPU per request, server and PostgreSQL apart: which side a change moved.
    read -r n _ < <(echo "${R[get_${v}_$round]}" | awk '{print $5}')
    R[cpu_${v}_$round]=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      split(a, x, " "); split(b, y, " ");
      printf "server_us=%.0f pg_us=%.0f", (y[1]-x[1])/hz*1e6/n, (y[2]-x[2])/hz*1e6/n }')
    say "cpu per request ${v} round $round: ${R[cpu_${v}_$round]}"
    [ -n "$pp" ] && { wait "$pp" || true; }
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    # What the errors were: statuses other than 200, and logged errors.
    grep -o 'status=[0-9]*' "$work/server-$v.log" | grep -v 'status=200' | sort | uniq -c \
      | sed "s/^/  $v round $round: /" >&2 || true
    grep ' ERROR \| WARN ' "$work/server-$v.log" | cut -c1-200 | sort | uniq -c | tail -3 >&2 || true
    : >"$work/server-$v.log"
  done
  pgbench_run "pg_lookup_$round" lookup.sql "$c"
done
say "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
for k in "${!R[@]}"; do echo "$k ${R[$k]}"; done | sort
