#!/usr/bin/env bash
# Fault injection under load, on loopback, against a private PostgreSQL
# cluster this script starts (never the shared one). Every load run keeps a
# ledger of the writes the API acknowledged; each scenario ends by checking
# that every one of them is stored and decrypts to the value written.
#
#   scripts/chaos.sh                 all scenarios (about 9 minutes, debug build)
#   scripts/chaos.sh kill pg         only some: kill pg rotate slow replicas
#   ROTATE_KILLS=30 scripts/chaos.sh rotate
#
# Scenarios:
#   kill      kill -9 of `serve` under write load, then restart (3 times)
#   pg        PostgreSQL stopped (fast) and restarted under load: 503s while it
#             is down, no hung request, recovery without restarting serve
#   rotate    kill -9 of `rotate` at random points, ROTATE_KILLS times
#             (default 20), each followed by `rotate --resume`, under load
#   slow      pool exhaustion: every write made 3 s slow (pg_sleep in a
#             trigger), then a table lock held: 503s fast, nothing piles up
#   replicas  three `serve` replicas on one database, load spread over them,
#             a data key rotation, a master key rotation and a rolling restart
#             in the middle: every read right, every write kept
#   leases    3 `boot --all --exec` loaders over 300 tenants through kill -9,
#             a join, a rolling restart, a PostgreSQL restart and a rotation:
#             no tenant in two agents at once (scripts/chaos/leases.sh)
#   failover  writes at c=64 on a primary with a synchronous standby; the
#             primary stopped -m immediate, the standby promoted: 0 lost,
#             time to recover, 503s (scripts/chaos/failover.sh)
#   failover-rotate  a rotation running across the promotion, resumed
#   pooler    writes at c=64 through PgBouncer (transaction mode) while it is
#             restarted twice: every acknowledged write kept (scripts/chaos/pooler.sh)
#
# Needs: cargo, PostgreSQL 15 server binaries (PG_BIN, default
# /usr/lib/postgresql/15/bin), psql, runuser when run as root. Builds the
# debug binary and the load client (examples/chaos_load.rs); PROFILE=release
# for an optimised build. Logs stay in target/chaos/ for reading afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/server.sh

scenarios=("$@")
# rotate first, while the table is small: each of its rotations re-encrypts
# every row.
[ ${#scenarios[@]} -eq 0 ] && scenarios=(rotate kill pg slow replicas failover failover-rotate)
profile=${PROFILE:-debug}
rotate_kills=${ROTATE_KILLS:-20}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

say() { printf '[chaos %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "FAILED: $*"; exit 1; }

flags=()
[ "$profile" = release ] && flags=(--release)
cargo build "${flags[@]}" --locked --bin vibee-sessions --example chaos_load
bin=$PWD/target/$profile/vibee-sessions
loader=$PWD/target/$profile/examples/chaos_load

out=$PWD/target/chaos
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d /tmp/vs-chaos.XXXXXX)
chmod 755 "$work"

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -d "$work/pg" ] && as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1
  declare -F standby_destroy >/dev/null && standby_destroy
  cp "$work"/*.log "$out/" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# --- the private cluster ----------------------------------------------------
pg_port=$(free_port)
[ "$(id -u)" = 0 ] && chown postgres "$work"
as_pg "$PG_BIN/initdb" -D "$work/pg" -U postgres --auth=trust >"$out/initdb.out" 2>&1
pg_start() {
  as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/postgres.log" -w -t 30 \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}
pg_stop() { as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -m fast -w -t 30 stop >/dev/null; }
pg_start
admin_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
psql_db() { pg_run psql "postgres://postgres@127.0.0.1:$pg_port/$1" -XAtq -v ON_ERROR_STOP=1 "${@:2}"; }
say "private PostgreSQL on 127.0.0.1:$pg_port ($work/pg)"

old_key=$("$bin" keygen)
new_key=$("$bin" keygen)

# serve NAME PORT DB [VAR=VALUE...]: starts a replica (with migrations, in
# an environment of its own), waits until ready.
declare -A serve_pid
serve() {
  local name=$1 port=$2 db=$3
  shift 3
  SERVER_PORT=$port SERVER_CLEAN_ENV=1 server_start "$bin" "$work/serve-$name.log" \
    DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/$db" MASTER_KEY="$old_key" "$@" ||
    { [ -n "${server_pid:-}" ] && pids+=("$server_pid"); die "serve $name did not become ready"; }
  serve_pid[$name]=$server_pid
  pids+=("$server_pid")
}

# load LEDGER PREFIX SECONDS CONCURRENCY URLS [extra args]: in the background.
load() {
  "$loader" load --ledger "$1" --prefix "$2" --seconds "$3" --concurrency "$4" \
    --targets "$5" --token-file "$work/token" "${@:6}" >"$work/load-$2.out" 2>"$work/load-$2.err" &
  load_pid=$!
  pids+=("$load_pid")
}
load_wait() {
  local rc=0
  wait "$load_pid" || rc=$?
  say "  $(cat "$work/load-$1.out")"
  [ "$rc" = 0 ] || die "load $1: wrong reads, hung requests or 500s ($(head -5 "$work/load-$1.err"))"
}
verify() {
  local line
  "$loader" verify --targets "$1" --token-file "$work/token" --ledger "$2" >"$work/verify.out" 2>&1 ||
    die "verify: $(tail -5 "$work/verify.out")"
  line=$(tail -1 "$work/verify.out")
  say "  $3: $line"
  echo "$3: $line" >>"$out/figures.txt"
}
statuses_of() { sed -n 's/.*statuses=\([^ ]*\).*/\1/p' "$work/load-$1.out"; }
count_status() { statuses_of "$1" | tr ',' '\n' | sed -n "s/^$2:\([0-9]*\)$/\1/p"; }

pg_run psql "$admin_url" -XAtqc "CREATE DATABASE chaos" >/dev/null
main_port=$(free_port)
run_main() { serve main "$main_port" chaos; }
run_main
DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/chaos" "$bin" token create --name chaos --scope admin >"$work/token"
main_url="http://127.0.0.1:$main_port"
: >"$out/figures.txt"
ledger_main=$work/ledger-main

for scenario in "${scenarios[@]}"; do
  case $scenario in
  kill)
    say "scenario kill: kill -9 of serve under write load, 3 times"
    load "$ledger_main" kill 24 8 "$main_url"
    for i in 1 2 3; do
      sleep 5
      kill -9 "${serve_pid[main]}"
      wait "${serve_pid[main]}" 2>/dev/null || true
      say "  killed serve (kill -9), restarting"
      sleep 1
      run_main
    done
    load_wait kill
    verify "$main_url" "$ledger_main" "kill -9 serve x3"
    ;;
  pg)
    say "scenario pg: PostgreSQL stopped for 8 s under load"
    before=${serve_pid[main]}
    load "$ledger_main" pg 26 8 "$main_url"
    sleep 6
    pg_stop
    say "  PostgreSQL stopped"
    down_from=$(date +%s.%N)
    # While it is down, a request is answered (503) and fast.
    for _ in 1 2 3; do
      curl -s -o /dev/null -w "  while down: GET /readyz -> %{http_code} in %{time_total}s\n" "$main_url/readyz"
      curl -s -o /dev/null -w "  while down: GET /api/v1/sessions/x -> %{http_code} in %{time_total}s\n" \
        -H "authorization: Bearer $(cat "$work/token")" "$main_url/api/v1/sessions/x"
      sleep 2
    done | tee -a "$out/figures.txt"
    sleep 2
    pg_start
    say "  PostgreSQL started again after $(python3 -c "import time; print(round(time.time() - $down_from, 1))") s"
    load_wait pg
    kill -0 "$before" 2>/dev/null || die "serve did not survive the database restart"
    [ "$before" = "${serve_pid[main]}" ] || die "serve was restarted"
    n503=$(count_status pg 503)
    [ -n "$n503" ] || die "no 503 while the database was down"
    say "  serve (pid $before) never restarted; 503s while down: $n503"
    echo "pg restart: 503 answers while down: $n503; $(cat "$work/load-pg.out")" >>"$out/figures.txt"
    verify "$main_url" "$ledger_main" "PostgreSQL stop/start"
    ;;
  rotate)
    say "scenario rotate: kill -9 of rotate at random points, $rotate_kills times, each resumed"
    rm -f "$work/stop-rotate"
    # A light load (bounded in requests) so that the table, which every
    # rotation re-encrypts whole, stays a few thousand rows.
    load "$ledger_main" rotate-seed 6 4 "$main_url"
    load_wait rotate-seed
    load "$ledger_main" rotate 600 2 "$main_url" --stop-file "$work/stop-rotate" --max-requests 4000
    landed=0
    for i in $(seq 1 "$rotate_kills"); do
      DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/chaos" MASTER_KEY="$old_key" RUST_LOG=warn \
        "$bin" rotate --grace-ms 3000 --batch-size 50 --pause-ms 10 >>"$work/rotate.log" 2>&1 </dev/null &
      rpid=$!
      pids+=("$rpid")
      sleep "$(awk -v s="$RANDOM" 'BEGIN { printf "%.2f", 0.05 + (s % 300) / 100 }')"
      if kill -9 "$rpid" 2>/dev/null; then
        landed=$((landed + 1))
      fi
      wait "$rpid" 2>/dev/null || true
      DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/chaos" MASTER_KEY="$old_key" RUST_LOG=warn \
        timeout 120 "$bin" rotate --resume --grace-ms 3000 --batch-size 200 >>"$work/rotate.log" 2>&1 </dev/null ||
        die "rotate --resume failed after kill $i: $(tail -3 "$work/rotate.log")"
    done
    touch "$work/stop-rotate"
    load_wait rotate
    DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/chaos" MASTER_KEY="$old_key" \
      "$bin" keys status >"$work/keys-after-rotate.log" 2>&1
    keys=$(psql_db chaos -c "SELECT count(*) FILTER (WHERE state='primary') || ' primary, ' || count(*) FILTER (WHERE state='active') || ' active, ' || count(*) FILTER (WHERE state='retired') || ' retired' FROM encryption_keys")
    off=$(psql_db chaos -c "SELECT count(*) FROM user_sessions s JOIN encryption_keys k ON k.id = s.data_key_id WHERE k.state <> 'primary'")
    rows=$(psql_db chaos -c "SELECT count(*) FROM user_sessions")
    say "  $rotate_kills rotations started, $landed killed mid-run (kill -9), every one resumed; $rows rows; keys: $keys; rows not on the primary: $off"
    echo "rotate: $rotate_kills rotations, $landed killed mid-run, all resumed; $rows rows; keys: $keys; rows off primary: $off" >>"$out/figures.txt"
    [ "$off" = 0 ] || die "rows left off the primary key after resume"
    verify "$main_url" "$ledger_main" "kill -9 rotate x$landed"
    ;;
  slow)
    say "scenario slow: every write 3 s slow (pg_sleep trigger), c=64: fail fast with 503"
    psql_db chaos -c "CREATE FUNCTION chaos_slow() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END \$\$;
      CREATE TRIGGER chaos_slow BEFORE INSERT OR UPDATE ON user_sessions FOR EACH ROW EXECUTE FUNCTION chaos_slow();"
    load "$ledger_main" slowdb 15 64 "$main_url"
    load_wait slowdb
    psql_db chaos -c "DROP TRIGGER chaos_slow ON user_sessions; DROP FUNCTION chaos_slow();"
    echo "slow writes (3 s, c=64, pool 16): $(cat "$work/load-slowdb.out")" >>"$out/figures.txt"
    [ -n "$(count_status slowdb 503)" ] || die "no 503 under pool exhaustion"
    say "scenario slow: a table lock held 14 s (LOCK TABLE user_sessions), c=32"
    psql_db chaos -c "BEGIN; LOCK TABLE user_sessions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(14); COMMIT;" >/dev/null &
    lock_pid=$!
    sleep 0.5
    load "$ledger_main" lock 12 32 "$main_url"
    load_wait lock
    wait "$lock_pid"
    echo "table lock held (c=32): $(cat "$work/load-lock.out")" >>"$out/figures.txt"
    [ -n "$(count_status lock 503)" ] || die "no 503 while the table was locked"
    say "  recovery: 5 s of load with the lock gone"
    load "$ledger_main" after-slow 5 8 "$main_url"
    load_wait after-slow
    [ -z "$(count_status after-slow 503)" ] || die "still 503 after the lock was released"
    verify "$main_url" "$ledger_main" "slow database and held lock"
    ;;
  replicas)
    say "scenario replicas: 3 replicas, a data key rotation, a master key rotation, a rolling restart"
    pg_run psql "$admin_url" -XAtqc "CREATE DATABASE chaos_replicas" >/dev/null
    rurl="postgres://postgres@127.0.0.1:$pg_port/chaos_replicas"
    # The store as it was before: data keys under the old master key.
    serve init "$(free_port)" chaos_replicas
    kill -TERM "${serve_pid[init]}"
    wait "${serve_pid[init]}" || true
    DATABASE_URL=$rurl "$bin" token create --name chaos --scope admin >"$work/token"
    # Step 2 of docs/KEY_ROTATION.md: replicas on new + previous=old.
    ports=()
    urls=()
    for r in 1 2 3; do
      p=$(free_port)
      ports+=("$p")
      urls+=("http://127.0.0.1:$p")
      serve "r$r" "$p" chaos_replicas MASTER_KEY="$new_key" MASTER_KEY_PREVIOUS="$old_key"
    done
    targets=$(IFS=,; echo "${urls[*]}")
    ledger_r=$work/ledger-replicas
    load "$ledger_r" replicas 45 12 "$targets"
    sleep 6
    say "  rotate (data key) while serving"
    DATABASE_URL=$rurl MASTER_KEY="$old_key" RUST_LOG=warn timeout 120 \
      "$bin" rotate --grace-ms 12000 </dev/null >>"$work/rotate-replicas.log" 2>&1 || die "rotate failed"
    say "  rotate-master while serving"
    DATABASE_URL=$rurl MASTER_KEY="$old_key" NEW_MASTER_KEY="$new_key" RUST_LOG=warn timeout 60 \
      "$bin" rotate-master --new-key-env NEW_MASTER_KEY </dev/null >>"$work/rotate-replicas.log" 2>&1 || die "rotate-master failed"
    say "  rolling restart onto the new master key alone"
    for r in 1 2 3; do
      kill -TERM "${serve_pid[r$r]}"
      wait "${serve_pid[r$r]}" || true
      serve "r$r" "${ports[$((r - 1))]}" chaos_replicas MASTER_KEY="$new_key"
      sleep 2
    done
    load_wait replicas
    DATABASE_URL=$rurl MASTER_KEY="$new_key" "$bin" keys status >"$work/keys-replicas.log" 2>&1 ||
      die "keys status with the new master key: $(cat "$work/keys-replicas.log")"
    echo "replicas: $(cat "$work/load-replicas.out")" >>"$out/figures.txt"
    verify "$targets" "$ledger_r" "3 replicas + rotate + rotate-master + rolling restart"
    DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/chaos" "$bin" token create --name chaos-main --scope admin >"$work/token"
    ;;
  leases) source scripts/chaos/leases.sh ;;
  failover) source scripts/chaos/failover.sh && failover_scenario ;;
  failover-rotate) source scripts/chaos/failover.sh && failover_rotate_scenario ;;
  pooler) source scripts/chaos/pooler.sh ;;
  *) die "unknown scenario $scenario (kill pg rotate slow replicas leases failover failover-rotate pooler)" ;;
  esac
done

# Everything acknowledged on the main database, checked once more at the end.
if [ -s "$ledger_main" ]; then
  verify "$main_url" "$ledger_main" "all scenarios on the main database"
fi
total=0
for l in "$work"/ledger-*; do
  [ -f "$l" ] && total=$((total + $(wc -l <"$l")))
done
say "figures in target/chaos/figures.txt; logs in target/chaos/"
echo "$total acknowledged, 0 lost"
