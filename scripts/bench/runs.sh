# shellcheck shell=bash
# The load runs of scripts/bench.sh and scripts/bench/scale.sh (sourced).
# Each stores "rps p50_ms p99_ms errors requests" in R[name] (declare -A R
# first). Uses $base, $duration, $work, $root, $tenants, $server_pid,
# DATABASE_URL and `say`; PERF_RECORD/PERF_RUN profile one wrk run.
wrk_run() { # name lua conns
  local name=$1 lua=$2 c=$3 line perf_pid=
  if [ -n "${PERF_RECORD:-}" ] && [ "$name" = "${PERF_RUN:-get_c64}" ]; then
    # A CPU profile of the server during this run (perf from linux-perf).
    perf record -F 499 -g -p "$server_pid" -o "$PERF_RECORD" -- sleep "$duration" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  line=$(wrk -t2 -c"$c" -d"${duration}s" --timeout 10s -s "scripts/bench/$lua" "$base" | grep '^RESULT' || true)
  [ -n "$line" ] || { say "wrk $name gave no result"; line="RESULT 0 0 0 -1 0"; }
  [ -n "$perf_pid" ] && { wait "$perf_pid" || true; }
  R[$name]=${line#RESULT }
  say "$name: ${R[$name]} (rps p50_ms p99_ms errors requests)"
}
pgbench_run() { # name script conns [-n]
  local name=$1 script=$2 c=$3 log tps p50 p99 fails
  log=$work/pgbench-$name
  mkdir -p "$log"
  (cd "$log" && pg_run pgbench -n -M prepared -c "$c" -j 2 -T "$duration" -D tenants="$tenants" \
      -l --log-prefix=lat -f "$root/scripts/bench/$script" "$DATABASE_URL" >summary 2>&1) || true
  tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$log/summary" | head -1)
  # No figure: say why (e.g. the server's max_connections, shared with others).
  [ -n "$tps" ] || { say "pgbench $name gave no figure:"; tail -n 3 "$log/summary" >&2; }
  fails=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$log/summary")
  # Per-transaction log: column 3 is the latency in microseconds.
  read -r p50 p99 < <(cat "$log"/lat* 2>/dev/null | awk '{print $3}' | sort -n \
      | awk '{a[NR]=$1} END {if (NR==0) {print 0, 0} else {i=int(NR*0.5); j=int(NR*0.99); if (i<1) i=1; if (j<1) j=1; printf "%.3f %.3f\n", a[i]/1000, a[j]/1000}}')
  R[$name]="$(printf '%.1f' "${tps:-0}") $p50 $p99 ${fails:-0} 0"
  say "$name: ${R[$name]} (tps p50_ms p99_ms failures)"
}
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$server_pid/status"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
