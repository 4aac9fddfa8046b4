# shellcheck shell=bash
# The settle run of the lease figures, sourced by scripts/bench/leases.sh
# (the full bench) and scripts/bench/lease-settle.sh (this run alone). Uses
# $bin, $work, `sql` and `say`, and the bench's DATABASE_URL and MASTER_KEY.
#
#   lease_settle LOADERS TTL
#
# Starts LOADERS `boot --all --exec` loaders (--lease-ttl TTL seconds)
# together over every active session, from no lease and no heartbeat, and
# polls until every active session is leased and no loader holds more than
# its share ⌈active ÷ LOADERS⌉ (at most 3 × TTL); then stops them (SIGTERM:
# each releases its leases). Sets settle_active, settle_share, settle_s
# (seconds from the start; empty when it did not settle), settle_load (the
# load average when it ended) and appends "seconds held most" per poll to
# $work/settle-trace.txt. LEASE_RUST_LOG: the loaders' RUST_LOG (default warn).
lease_settle() {
  local loaders=$1 ttl=$2 pids=() i t0 deadline held most now
  settle_active=$(sql -c "SELECT count(*) FROM user_sessions WHERE is_active")
  settle_share=$(((settle_active + loaders - 1) / loaders))
  sql -c "DELETE FROM session_leases; DELETE FROM lease_holders"
  settle_s=
  t0=$(date +%s.%N)
  for i in $(seq 1 "$loaders"); do
    VIBEE_HOLDER=bench-loader-$i RUST_LOG=${LEASE_RUST_LOG:-warn} "$bin" boot --all --lease-ttl "${ttl}s" --exec -- \
      sh -c 'exec sleep 100000' >>"$work/lease-loader-$i.log" 2>&1 &
    pids+=($!)
  done
  deadline=$((SECONDS + 3 * ttl))
  while [ $SECONDS -lt $deadline ]; do
    IFS='|' read -r held most < <(sql -c "
      SELECT count(*), coalesce(max(n), 0) FROM (
        SELECT count(*) OVER (PARTITION BY holder) AS n FROM session_leases
        WHERE expires_at > now()) h")
    now=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}')
    echo "$now $held $most" >>"$work/settle-trace.txt"
    if [ "$held" = "$settle_active" ] && [ "$most" -le "$settle_share" ]; then
      settle_s=$now
      break
    fi
    sleep 0.2
  done
  settle_load=$(cut -d' ' -f1-3 /proc/loadavg)
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
