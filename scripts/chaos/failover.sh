# The chaos scenarios `failover` and `failover-rotate` (sourced by
# scripts/chaos.sh, which provides $bin, $work, $out, $old_key, serve, load,
# load_wait, verify, count_status, say, die and the pids list). Each runs on
# a private primary with a synchronous streaming standby of its own
# (scripts/lib/standby.sh), not on chaos.sh's cluster, and one `serve` given
# both hosts with target_session_attrs=read-write.
#
#   failover         writes at c=64; the primary is stopped with -m immediate
#                    and, 2 s later, the standby promoted. Checked: every
#                    acknowledged write is readable afterwards (verify), no
#                    500 and no hung request (load), serve never restarted.
#                    Measured: time from the promotion to the first write
#                    acknowledged again, the 503s.
#   failover-rotate  a `rotate` of the data key is running (slowed down:
#                    batches of 10, 100 ms pauses) under a light load when the
#                    primary is stopped and the standby promoted; it is
#                    resumed (`rotate --resume`) and must finish with every
#                    row under the new primary key and every acknowledged
#                    write readable.
source scripts/lib/standby.sh

failover_gap=${FAILOVER_GAP:-2}

# failover_setup NAME: a pair, database chaos_failover on it, `serve` on both
# hosts, an admin token in $work/token (the main one is kept aside).
failover_setup() {
  local name=$1
  [ -n "${standby_dir:-}" ] && standby_destroy
  standby_create "$work/pair-$name" || die "cannot make the primary and its standby"
  fo_url="postgres://postgres@127.0.0.1:$standby_primary_port,127.0.0.1:$standby_standby_port/chaos_failover?target_session_attrs=read-write&sslmode=disable"
  standby_sql "$standby_primary_port" "CREATE DATABASE chaos_failover" >/dev/null
  serve "$name" "$(free_port)" chaos_failover DATABASE_URL="$fo_url"
  fo_serve_url="http://127.0.0.1:$server_port"
  [ -f "$work/token" ] && [ ! -f "$work/token-main" ] && cp "$work/token" "$work/token-main"
  DATABASE_URL=$fo_url "$bin" token create --name "chaos-$name" --scope admin >"$work/token"
}

failover_teardown() {
  standby_destroy
  [ -f "$work/token-main" ] && cp "$work/token-main" "$work/token"
  return 0
}

ms_now() { date +%s%3N; }

# failover_switch: stop the primary (-m immediate), wait $failover_gap s,
# promote the standby; sets fo_stopped_ms, fo_promote_ms (pg_ctl promote
# issued) and fo_promoted_ms (the standby answered that it left recovery).
failover_switch() {
  standby_stop_primary immediate
  # Taken once pg_ctl has returned: the primary is gone, so no write
  # completes between now and the promotion.
  fo_stopped_ms=$(ms_now)
  say "  primary stopped (-m immediate)"
  sleep "$failover_gap"
  fo_promote_ms=$(ms_now)
  standby_promote || die "the standby was not promoted"
  fo_promoted_ms=$(ms_now)
  say "  standby promoted (pg_ctl promote issued $((fo_promote_ms - fo_stopped_ms)) ms after the stop, out of recovery $((fo_promoted_ms - fo_promote_ms)) ms later)"
}

failover_scenario() {
  say "scenario failover: writes at c=64, primary stopped -m immediate, standby promoted ${failover_gap}s later"
  failover_setup failover
  local before=${serve_pid[failover]} ledger=$work/ledger-failover timeline=$work/timeline-failover
  load "$ledger" failover 30 64 "$fo_serve_url" --timeline "$timeline"
  sleep 10
  failover_switch
  load_wait failover
  kill -0 "$before" 2>/dev/null || die "serve did not survive the failover"
  [ "$before" = "${serve_pid[failover]}" ] || die "serve was restarted"
  local first_ack n503 last_ack_before
  # The first write acknowledged after the stop (none can be before the promotion).
  first_ack=$(awk -v t="$fo_stopped_ms" '$1 > t && ($2 == 200 || $2 == 201) { print $1; exit }' <(sort -n "$timeline"))
  last_ack_before=$(awk -v t="$fo_stopped_ms" '$1 <= t && ($2 == 200 || $2 == 201) { l = $1 } END { print l }' <(sort -n "$timeline"))
  [ -n "$first_ack" ] || die "no write acknowledged after the promotion"
  n503=$(count_status failover 503)
  local line="failover (c=64, primary -m immediate, promotion after ${failover_gap}s): first write acknowledged $((first_ack - fo_promote_ms)) ms after pg_ctl promote was issued ($((first_ack - last_ack_before)) ms without an acknowledged write, $((first_ack - fo_stopped_ms)) ms after the stop); ${n503:-0} answers 503; serve never restarted"
  say "  $line"
  echo "$line; $(cat "$work/load-failover.out")" >>"$out/figures.txt"
  verify "$fo_serve_url" "$ledger" "failover"
  failover_teardown
}

failover_rotate_scenario() {
  say "scenario failover-rotate: a rotation running across a promotion, resumed"
  failover_setup failover-rotate
  local ledger=$work/ledger-failover-rotate rlog=$work/rotate-failover.log rpid rc=0
  # Bounded in requests, not time, so the table is the same size (about
  # 1 500 rows) however busy the machine is.
  load "$ledger" fo-rotate-seed 120 8 "$fo_serve_url" --max-requests 3000
  load_wait fo-rotate-seed
  load "$ledger" fo-rotate 40 4 "$fo_serve_url" --stop-file "$work/stop-fo-rotate"
  rm -f "$work/stop-fo-rotate"
  DATABASE_URL=$fo_url MASTER_KEY="$old_key" RUST_LOG=warn \
    "$bin" rotate --grace-ms 1000 --batch-size 10 --pause-ms 100 >>"$rlog" 2>&1 </dev/null &
  rpid=$!
  pids+=("$rpid")
  sleep 3
  kill -0 "$rpid" 2>/dev/null || die "rotate finished before the failover; slow it down ($(tail -3 "$rlog"))"
  local moved
  moved=$(pg_run psql "postgres://postgres@127.0.0.1:$standby_primary_port/chaos_failover" -XAtqc "SELECT count(*) FILTER (WHERE k.state = 'primary') || ' of ' || count(*) FROM user_sessions s JOIN encryption_keys k ON k.id = s.data_key_id")
  say "  $moved rows under the new key when the primary stops"
  failover_switch
  wait "$rpid" || rc=$?
  say "  the interrupted rotate exited with $rc"
  local started=$(ms_now)
  DATABASE_URL=$fo_url MASTER_KEY="$old_key" RUST_LOG=warn timeout 120 \
    "$bin" rotate --resume --grace-ms 1000 --batch-size 200 >>"$rlog" 2>&1 </dev/null ||
    die "rotate --resume after the promotion failed: $(tail -3 "$rlog")"
  say "  rotate --resume finished in $(($(ms_now) - started)) ms"
  touch "$work/stop-fo-rotate"
  load_wait fo-rotate
  local promoted=$standby_standby_port off rows keys
  keys=$(pg_run psql "postgres://postgres@127.0.0.1:$promoted/chaos_failover" -XAtqc "SELECT count(*) FILTER (WHERE state='primary') || ' primary, ' || count(*) FILTER (WHERE state='active') || ' active, ' || count(*) FILTER (WHERE state='retired') || ' retired' FROM encryption_keys")
  off=$(pg_run psql "postgres://postgres@127.0.0.1:$promoted/chaos_failover" -XAtqc "SELECT count(*) FROM user_sessions s JOIN encryption_keys k ON k.id = s.data_key_id WHERE k.state <> 'primary'")
  rows=$(pg_run psql "postgres://postgres@127.0.0.1:$promoted/chaos_failover" -XAtqc "SELECT count(*) FROM user_sessions")
  local line="failover-rotate: rotate interrupted by the promotion with $moved rows re-encrypted (exit $rc), rotate --resume finished; $rows rows; keys: $keys; rows not on the primary key: $off"
  say "  $line"
  echo "$line" >>"$out/figures.txt"
  [ "$off" = 0 ] || die "rows left off the primary key after the resumed rotation"
  verify "$fo_serve_url" "$ledger" "failover-rotate"
  failover_teardown
}
