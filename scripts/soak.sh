#!/usr/bin/env bash
# Soak: mixed load for DURATION seconds (default 600) at c=64 on loopback —
# 80% credentials GET, 15% upsert, 5% list (scripts/soak/mixed.lua, wrk) —
# against one `serve` on a throw-away database. Reports p99 per minute and
# the server's RSS; fails on any 5xx, on socket errors, or when RSS grows by
# 10% or more after the first minute (the warm-up).
#
#   scripts/soak.sh                       10 minutes, debug build
#   DURATION=120 scripts/soak.sh          shorter
#   PROFILE=release scripts/soak.sh       optimised build
#   USERS=1000 CONNECTIONS=64 THREADS=2   the defaults
#
# The database server: TEST_DATABASE_URL, else DATABASE_URL, else the local
# PostgreSQL. Installs wrk (Debian package) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

duration=${DURATION:-600}
users=${USERS:-1000}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
profile=${PROFILE:-debug}
segment=$(( duration < 60 ? duration : 60 ))
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
ensure_postgres "$admin_url"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (apt-get install wrk) ..." >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

flags=()
[ "$profile" = release ] && flags=(--release)
cargo build "${flags[@]}" --locked --bin vibee-sessions --example seed_sessions
bin=target/$profile/vibee-sessions

out=target/soak
mkdir -p "$out"
source scripts/lib/scratch.sh
source scripts/lib/server.sh
scratch_database "$admin_url" "vs_soak_$$" "$bin"
"target/$profile/examples/seed_sessions" "$users" >/dev/null
SOAK_TOKEN=$(server_token "$bin" soak)
export SOAK_TOKEN SOAK_USERS=$users
: >"$out/serve.log"
server_start "$bin" "$out/serve.log" -- --no-migrate
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }

echo "soak: ${duration}s, c=$connections, $threads wrk threads, $users sessions, $profile build, server pid $server_pid"
echo "minute  requests   rps      p50_ms   p99_ms   max_ms    2xx      4xx  5xx  sock_err  rss_kib"
total_5xx=0
total_err=0
rss_start=$(rss)
rss_warm=
elapsed=0
minute=0
: >"$out/minutes.txt"
while [ "$elapsed" -lt "$duration" ]; do
  d=$(( duration - elapsed < segment ? duration - elapsed : segment ))
  minute=$((minute + 1))
  wrk -t"$threads" -c"$connections" -d"${d}s" --timeout 35s -s scripts/soak/mixed.lua \
    "$server_url" >"$out/wrk-$minute.txt" 2>&1
  elapsed=$((elapsed + d))
  kill -0 "$server_pid" || { echo "the server died"; exit 1; }
  r=$(rss)
  [ "$minute" = 1 ] && rss_warm=$r
  s=$(grep '^STATUS' "$out/wrk-$minute.txt")
  l=$(grep '^LATENCY' "$out/wrk-$minute.txt")
  get() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
  n5=$(get "$s" 5xx)
  err=$(( $(get "$s" errors_connect) + $(get "$s" errors_read) + $(get "$s" errors_write) + $(get "$s" errors_timeout) ))
  total_5xx=$((total_5xx + n5))
  total_err=$((total_err + err))
  printf '%-7s %-10s %-8s %-8s %-8s %-9s %-8s %-4s %-4s %-9s %s\n' "$minute" "$(get "$l" requests)" "$(get "$l" rps)" \
    "$(get "$l" p50_ms)" "$(get "$l" p99_ms)" "$(get "$l" max_ms)" "$(get "$s" 2xx)" "$(get "$s" 4xx)" "$n5" "$err" "$r" |
    tee -a "$out/minutes.txt"
done
rss_end=$(rss)
growth=$(python3 -c "print(round(100.0 * ($rss_end - $rss_warm) / $rss_warm, 1))")
echo "rss: start ${rss_start} KiB, after warm-up (minute 1) ${rss_warm} KiB, end ${rss_end} KiB: growth ${growth}% after warm-up"
echo "5xx: $total_5xx; socket errors: $total_err"
status=0
[ "$total_5xx" = 0 ] || { echo "FAIL: 5xx answers"; status=1; }
[ "$total_err" = 0 ] || { echo "FAIL: socket errors"; status=1; }
python3 -c "import sys; sys.exit(0 if $growth < 10 else 1)" || { echo "FAIL: RSS grew ${growth}% (>= 10%)"; status=1; }
[ "$status" = 0 ] && echo "soak passed"
exit $status
