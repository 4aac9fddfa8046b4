# The chaos scenario `leases` (sourced by scripts/chaos.sh, which provides
# $bin, $work, $out, $pg_port, $old_key, pg_stop/pg_start, psql_db, say, die
# and the pids list). Three `boot --all --exec` loaders over 300 tenants; each
# agent (lease_agent.py) logs the interval in which it ran each tenant. Then,
# in turn: kill -9 of a loader, a new loader, a rolling restart of all of
# them, a PostgreSQL restart and a data-key rotation. lease_check.py then
# proves from the intervals that no tenant ran in two agents at one instant
# and that every tenant ran again within the bound after every event.
lease_ttl=${LEASE_TTL:-9}
lease_tenants=${LEASE_TENANTS:-300}
lease_period=$((lease_ttl / 3))
# TTL + one renewal period, plus 2 s to stop and start an agent.
lease_bound=$((lease_ttl + lease_period + 2))
say "scenario leases: 3 loaders, $lease_tenants tenants, lease TTL ${lease_ttl}s (bound ${lease_bound}s)"
cargo build "${flags[@]}" --locked --example seed_sessions >/dev/null 2>&1 || die "cannot build examples/seed_sessions"
seed=$PWD/target/$profile/examples/seed_sessions
pg_run psql "postgres://postgres@127.0.0.1:$pg_port/postgres" -XAtqc "CREATE DATABASE chaos_leases" >/dev/null
lurl="postgres://postgres@127.0.0.1:$pg_port/chaos_leases"
DATABASE_URL=$lurl MASTER_KEY="$old_key" "$bin" migrate >/dev/null
DATABASE_URL=$lurl MASTER_KEY="$old_key" SEED_BLOB_BYTES=64 "$seed" "$lease_tenants" >/dev/null
agents=$work/lease-agents
mkdir -p "$agents"
events=$work/lease-events
: >"$events"
event() { printf '%s %s\n' "$(date +%s.%N)" "$1" >>"$events"; say "  event: $1"; }

declare -A loader_pid
start_loader() {
  env -i PATH="$PATH" DATABASE_URL="$lurl" MASTER_KEY="$old_key" RUST_LOG=warn VIBEE_HOLDER="$1" \
    "$bin" boot --all --lease-ttl "${lease_ttl}s" --stop-grace 5s --exec -- \
    python3 "$PWD/scripts/chaos/lease_agent.py" "$agents" >>"$work/loader-$1.log" 2>&1 &
  loader_pid[$1]=$!
  pids+=($!)
}
# wait_split N: every tenant leased, nobody above its share of N loaders.
wait_split() {
  local share=$(((lease_tenants + $1 - 1) / $1)) deadline=$((SECONDS + 4 * lease_ttl)) got
  while :; do
    got=$(psql_db chaos_leases -c "SELECT count(*) || ' ' || coalesce(max(n), 0) FROM (SELECT holder, count(*) AS n FROM session_leases WHERE expires_at > now() GROUP BY holder) h" 2>/dev/null || echo "0 0")
    set -- "$1" $got
    [ "$2" = "$1" ] && [ "$(psql_db chaos_leases -c "SELECT count(*) FROM session_leases WHERE expires_at > now()")" = "$lease_tenants" ] && [ "$3" -le "$share" ] && return 0
    [ $SECONDS -lt $deadline ] || die "the loaders did not split $lease_tenants tenants ($got)"
    sleep 0.5
  done
}

for l in loader-1 loader-2 loader-3; do start_loader "$l"; done
wait_split 3
event covered
sleep $lease_period

kill -9 "${loader_pid[loader-1]}"
wait "${loader_pid[loader-1]}" 2>/dev/null || true
event "kill -9 loader-1"
wait_split 2
sleep $lease_period

start_loader loader-4
event "loader-4 joins"
wait_split 3
sleep $lease_period

for l in loader-2 loader-3 loader-4; do
  kill -TERM "${loader_pid[$l]}"
  wait "${loader_pid[$l]}" 2>/dev/null || true
  start_loader "$l"
  event "rolling restart of $l"
  wait_split 3
done
sleep $lease_period

pg_stop
event "PostgreSQL stopped"
pg_start
event "PostgreSQL started"
sleep "$lease_ttl"
wait_split 3

DATABASE_URL=$lurl MASTER_KEY="$old_key" RUST_LOG=warn timeout 120 \
  "$bin" rotate --grace-ms 2000 </dev/null >>"$work/rotate-leases.log" 2>&1 || die "rotate failed"
event "data-key rotation"
sleep "$lease_ttl"
wait_split 3

event end
for l in loader-2 loader-3 loader-4; do kill -TERM "${loader_pid[$l]}"; done
for l in loader-2 loader-3 loader-4; do wait "${loader_pid[$l]}" 2>/dev/null || true; done
left=$(psql_db chaos_leases -c "SELECT count(*) FROM session_leases")
python3 scripts/chaos/lease_check.py "$agents" "$events" "$lease_tenants" "$lease_bound" >"$work/lease-check.out" 2>&1 ||
  die "leases: $(cat "$work/lease-check.out")"
say "  $(head -1 "$work/lease-check.out"); $left leases left after a clean stop"
echo "leases (3 loaders, $lease_tenants tenants, TTL ${lease_ttl}s, bound ${lease_bound}s): $(head -1 "$work/lease-check.out")" >>"$out/figures.txt"
cp "$events" "$out/lease-events.txt"
