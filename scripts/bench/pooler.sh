# PgBouncer figures for scripts/bench.sh (sourced; uses $bin, $root, $work,
# $concurrency, $duration, wrk_run, R, say, sql and the bench's DATABASE_URL
# and MASTER_KEY). GET and upsert at the highest concurrency against two
# servers on the same database, run alternately: one straight to
# PostgreSQL (named prepared statements), one through a PgBouncer in
# transaction mode (Debian's; DATABASE_PREPARED_STATEMENTS=off). Writes
# $work/pooler.md, which bench.sh appends to the report.
source "$root/scripts/lib/pgbouncer.sh"
pgb_c=${concurrency##* }
say "pooler: GET and upsert at c=$pgb_c, direct vs through PgBouncer (transaction mode)"
read -r pgb_host pgb_port < <(sql -F ' ' -c \
  "SELECT coalesce(host(inet_server_addr()), '127.0.0.1'), coalesce(inet_server_port(), 5432)")
pooler_pids=()
scratch_cleanup() {
  [ ${#pooler_pids[@]} -gt 0 ] && kill "${pooler_pids[@]}" 2>/dev/null
  pgbouncer_stop
  rm -rf "$work" "$pgb_dir"
}
# Under target/: PgBouncer runs as postgres when we are root, and $work is private.
pgb_dir=$root/target/pgbouncer-bench-$$
pgbouncer_start "$pgb_dir" "$pgb_host" "$pgb_port"
server_start "$bin" "$work/server-direct.log" RUST_LOG=warn -- --no-migrate ||
  { say "the direct server did not start"; exit 1; }
pooler_pids+=("$server_pid")
direct_base=$server_url
server_start "$bin" "$work/server-pooled.log" RUST_LOG=warn \
  DATABASE_URL="$(pgbouncer_url "$DATABASE_URL")" DATABASE_DIRECT_URL="$DATABASE_URL" \
  DATABASE_PREPARED_STATEMENTS=off -- --no-migrate ||
  { say "the server behind PgBouncer did not start"; exit 1; }
pooler_pids+=("$server_pid")
pooled_base=$server_url
server_pid=
for b in "$direct_base" "$pooled_base"; do
  wrk -t2 -c"$pgb_c" -d1s -s scripts/bench/get.lua "$b" >/dev/null
done
for kind in get upsert; do
  base=$direct_base wrk_run "direct_${kind}_c$pgb_c" "$kind.lua" "$pgb_c"
  base=$pooled_base wrk_run "pooled_${kind}_c$pgb_c" "$kind.lua" "$pgb_c"
done
kill "${pooler_pids[@]}" 2>/dev/null
wait "${pooler_pids[@]}" 2>/dev/null || true
pooler_pids=()
pgbouncer_stop
rm -rf "$pgb_dir"
pooler_errors=$(cat "$work/server-direct.log" "$work/server-pooled.log" | grep -c -E ' ERROR ' || true)
pgb_version=$("$(pgbouncer_bin)" --version | head -1 | awk '{print $2}')
{
  echo
  echo "## Through PgBouncer"
  echo
  echo "Two servers on the bench database, runs alternating, c=$pgb_c, ${duration} s each:"
  echo "one straight to PostgreSQL, one with DATABASE_URL at PgBouncer $pgb_version"
  echo "(\`pool_mode = transaction\`, \`default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}\`) and"
  echo "\`DATABASE_PREPARED_STATEMENTS=off\` (\`scripts/bench/pooler.sh\`)."
  echo
  echo "| run | direct rps | through PgBouncer rps | ratio | p99 direct / PgBouncer (ms) | target |"
  echo "|---|---|---|---|---|---|"
  for kind in get upsert; do
    d=${R[direct_${kind}_c$pgb_c]:-0 0 0 0 0}
    p=${R[pooled_${kind}_c$pgb_c]:-0 0 0 0 0}
    r=$(awk -v a="${p%% *}" -v b="${d%% *}" 'BEGIN { if (b+0 == 0) print "n/a"; else printf "%.2f", a/b }')
    echo "| $kind | ${d%% *} | ${p%% *} | $r | $(echo "$d" | awk '{print $3}') / $(echo "$p" | awk '{print $3}') | >= 0.8 x: $(awk -v r="$r" 'BEGIN {print (r+0 >= 0.8) ? "met" : "**missed**"}') |"
  done
} >"$work/pooler.md"
[ "$pooler_errors" = 0 ] || { say "the pooler bench's servers logged $pooler_errors ERROR lines"; bad_pooler=1; }
