#!/usr/bin/env bash
# GET /api/v1/stats as callers see it since it is shared (issue 17): on one
# seeded database and one server, a cold call, cached calls, no-cache calls,
# and bursts of concurrent callers, each with the scans of user_sessions it
# cost (pg_stat_user_tables) and the server's computations
# (vibee_stats_computations_total). The unshared reference, side by side:
# the same burst sent one no-cache call after another (each call a scan, as
# every call was before).
#
#   scripts/bench/stats.sh                  # 100,000 tenants, release
#   TENANTS=10000 PROFILE=debug scripts/bench/stats.sh
#
# Knobs: TENANTS (default 100000), BURST (concurrent callers, default 50),
# PROFILE, VIBEE_SESSIONS_BIN / SEED_BIN, BENCH_DB (default vs_stats).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
source scripts/lib/postgres.sh

tenants=${TENANTS:-100000}
burst=${BURST:-50}
profile=${PROFILE:-release}
db=${BENCH_DB:-vs_stats}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
say() { printf '[stats %s] %s\n' "$(date +%T)" "$*" >&2; }

source scripts/bench/prepare.sh
work=$(mktemp -d)
scratch_cleanup() { rm -rf "$work"; }
source scripts/lib/scratch.sh
source scripts/lib/server.sh
sql() { pg_run psql "$DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

scratch_database "$admin_url" "$db" "$bin"
say "seeding $tenants tenants"
"$seed" "$tenants" 0 >/dev/null 2>&1
sql -c "VACUUM ANALYZE" >/dev/null
token=$(server_token "$bin" stats-bench)
# The default max age; the bursts wait it out to start from a stale copy.
max_age=10
server_start "$bin" "$work/server.log" RUST_LOG=warn STATS_MAX_AGE_SECS=$max_age -- --no-migrate
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# One call: its time in ms. Extra curl arguments (a header) pass through.
call() {
  curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" "$@" \
    "$server_url/api/v1/stats" | awk '{printf "%.2f\n", $1 * 1000}'
}
scans() {
  sleep 1.2 # the statistics collector's flush interval (1 s)
  sql -c "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'user_sessions'"
}
computations() {
  curl -fsS "$server_url/metrics" | awk '/^vibee_stats_computations_total / {v = $2} END {print v + 0}'
}
# `burst` callers at once (after the copy went stale): wall ms.
concurrent() {
  local t0 t1
  t0=$(date +%s%N)
  seq "$burst" | xargs -P "$burst" -I{} curl -fsS -o /dev/null \
    -H "Authorization: Bearer $token" "$@" "$server_url/api/v1/stats"
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}
# Runs "$@" and prints "result scans computations" (the deltas).
measured() {
  local s0 c0 out
  s0=$(scans)
  c0=$(computations)
  out=$("$@")
  echo "$out $(($(scans) - s0)) $(($(computations) - c0))"
}

report() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }
five() { for _ in 1 2 3 4 5; do call "$@"; done | median; }
cold=$(measured call)
cached=$(measured five)
fresh=$(measured five -H 'Cache-Control: no-cache')
sleep $((max_age + 1))
shared=$(measured concurrent)
sleep $((max_age + 1))
shared_fresh=$(measured concurrent -H 'Cache-Control: no-cache')
sequential() {
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq "$burst"); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Cache-Control: no-cache' "$server_url/api/v1/stats"
  done
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}
unshared=$(measured sequential)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

cut1() { echo "$1" | awk '{print $1}'; }
cut2() { echo "$1" | awk '{print $2}'; }
cut3() { echo "$1" | awk '{print $3}'; }
echo
echo "GET /api/v1/stats, $tenants tenants, $profile, STATS_MAX_AGE_SECS=$max_age; $(nproc) cores;"
echo "load average (1/5/15 min) at the start: $load_start; at the end: $load_end"
echo "scans: scans of user_sessions (pg_stat_user_tables, seq + index); computations: vibee_stats_computations_total"
echo
report "call" "ms" "scans" "computations"
report "---" "---" "---" "---"
report "cold (the first call)" "$(cut1 "$cold")" "$(cut2 "$cold")" "$(cut3 "$cold")"
report "cached, median of 5" "$(cut1 "$cached")" "$(cut2 "$cached")" "$(cut3 "$cached")"
report "no-cache, median of 5" "$(cut1 "$fresh")" "$(cut2 "$fresh")" "$(cut3 "$fresh")"
report "$burst at once, stale copy: wall" "$(cut1 "$shared")" "$(cut2 "$shared")" "$(cut3 "$shared")"
report "$burst at once, no-cache: wall" "$(cut1 "$shared_fresh")" "$(cut2 "$shared_fresh")" "$(cut3 "$shared_fresh")"
report "$burst no-cache one after another (unshared): wall" "$(cut1 "$unshared")" "$(cut2 "$unshared")" "$(cut3 "$unshared")"
awk -v a="$(cut1 "$cold")" -v b="$(cut1 "$cached")" -v s="$(cut1 "$shared")" -v u="$(cut1 "$unshared")" 'BEGIN {
  if (b > 0) printf "cold / cached: %.0fx\n", a / b
  if (s > 0) printf "%s callers: unshared wall / shared wall: %.1fx\n", "'"$burst"'", u / s }'
