# Lease figures for scripts/bench.sh (sourced; uses $bin, $root, $work,
# $tenants, $flags, $profile, say, sql and the bench's DATABASE_URL and
# MASTER_KEY). Writes $work/leases.md, which bench.sh appends to the report.
#   LEASE_LOADERS  loaders in the settle run (default 3)
#   LEASE_TTL      their --lease-ttl in seconds (default 30)
lease_loaders=${LEASE_LOADERS:-3}
lease_ttl=${LEASE_TTL:-30}
say "leases: take/renew/release, batched renewal, $lease_loaders loaders settling over $tenants tenants"
cargo build "${flags[@]}" --locked --example lease_bench >&2
"$root/target/$profile/examples/lease_bench" "$tenants" >"$work/lease-bench.out"
lb() { awk -v k="$1" '$1 == k {print $2}' "$work/lease-bench.out"; }

# N loaders over every tenant, from nothing: until every tenant is leased
# and no loader holds more than its share.
# The active sessions, not $tenants: the upsert runs above add sessions.
active=$(sql -c "SELECT count(*) FROM user_sessions WHERE is_active")
share=$(((active + lease_loaders - 1) / lease_loaders))
sql -c "DELETE FROM session_leases; DELETE FROM lease_holders"
lpids=()
t0=$(date +%s.%N)
for i in $(seq 1 "$lease_loaders"); do
  VIBEE_HOLDER=bench-loader-$i RUST_LOG=warn "$bin" boot --all --lease-ttl "${lease_ttl}s" --exec -- \
    sh -c 'exec sleep 100000' >>"$work/lease-loader-$i.log" 2>&1 &
  lpids+=($!)
done
settle_s=
deadline=$((SECONDS + 3 * lease_ttl))
while [ $SECONDS -lt $deadline ]; do
  held=$(sql -c "SELECT count(*) FROM session_leases WHERE expires_at > now()")
  most=$(sql -c "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM session_leases WHERE expires_at > now() GROUP BY holder) h")
  if [ "$held" = "$active" ] && [ "$most" -le "$share" ]; then
    settle_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}')
    break
  fi
  sleep 0.2
done
kill -TERM "${lpids[@]}" 2>/dev/null || true
wait "${lpids[@]}" 2>/dev/null || true
bound=$((lease_ttl + lease_ttl / 3))
batch_ratio=$(awk -v a="$(lb batch_renew_s)" -v b="$(lb single_renew_s)" 'BEGIN { if (b+0 == 0) print "n/a"; else printf "%.3f", a/b }')
{
  echo
  echo "## Leases"
  echo
  echo "Store statements on one connection (\`examples/lease_bench.rs\`, $(lb leases) leases), and"
  echo "$lease_loaders \`boot --all --exec\` loaders (--lease-ttl ${lease_ttl}s) started together over $tenants tenants."
  echo
  echo "| what | figure | reference | ratio | target |"
  echo "|---|---|---|---|---|"
  echo "| take (free lease, audited) | $(lb take_per_s) /s | | | |"
  echo "| renew, one statement per lease | $(lb renew_per_s) /s | | | |"
  echo "| release (audited) | $(lb release_per_s) /s | | | |"
  echo "| batched renewal of $(lb leases) leases, one statement | $(lb batch_renew_s) s | $(lb leases) single renewals $(lb single_renew_s) s | $batch_ratio | <= 0.2 x: $(awk -v r="$batch_ratio" 'BEGIN {print (r+0 <= 0.2) ? "met" : "**missed**"}') |"
  echo "| $lease_loaders loaders settle over $active tenants (all leased, none above its share) | ${settle_s:-did not settle} s | TTL + one renewal period = ${bound} s | | $([ -n "$settle_s" ] && awk -v s="$settle_s" -v b="$bound" 'BEGIN {print (s+0 <= b+0) ? "met" : "**missed**"}' || echo "**missed**") |"
} >"$work/leases.md"
[ -n "$settle_s" ] || { say "the loaders did not settle"; bad_leases=1; }
