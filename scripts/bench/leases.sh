# Lease figures for scripts/bench.sh (sourced; uses $bin, $root, $work,
# $tenants, $flags, $profile, say, sql and the bench's DATABASE_URL and
# MASTER_KEY). Writes $work/leases.md, which bench.sh appends to the report.
#   LEASE_LOADERS  loaders in the settle run (default 3)
#   LEASE_TTL      their --lease-ttl in seconds (default 30)
lease_loaders=${LEASE_LOADERS:-3}
lease_ttl=${LEASE_TTL:-30}
say "leases: take/renew/release, batched take/renewal/release, $lease_loaders loaders settling over $tenants tenants"
cargo build "${flags[@]}" --locked --example lease_bench >&2
"$root/target/$profile/examples/lease_bench" "$tenants" >"$work/lease-bench.out"
lb() { awk -v k="$1" '$1 == k {print $2}' "$work/lease-bench.out"; }

# N loaders over every tenant, from nothing: until every tenant is leased
# and no loader holds more than its share.
# The active sessions, not $tenants: the upsert runs above add sessions.
source "$root/scripts/bench/settle.sh"
lease_settle "$lease_loaders" "$lease_ttl"
active=$settle_active
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
  echo "| batched take, $(lb batch) a statement (audited) | $(lb take_batch_per_s) /s | single take $(lb take_per_s) /s | $(awk -v a="$(lb take_batch_per_s)" -v b="$(lb take_per_s)" 'BEGIN { if (b+0 == 0) print "n/a"; else printf "%.1f x", a/b }') | |"
  echo "| batched release, $(lb batch) a statement (audited) | $(lb release_batch_per_s) /s | single release $(lb release_per_s) /s | $(awk -v a="$(lb release_batch_per_s)" -v b="$(lb release_per_s)" 'BEGIN { if (b+0 == 0) print "n/a"; else printf "%.1f x", a/b }') | |"
  echo "| batched renewal of $(lb leases) leases, one statement | $(lb batch_renew_s) s | $(lb leases) single renewals $(lb single_renew_s) s | $batch_ratio | <= 0.2 x: $(awk -v r="$batch_ratio" 'BEGIN {print (r+0 <= 0.2) ? "met" : "**missed**"}') |"
  echo "| $lease_loaders loaders settle over $active tenants (all leased, none above its share) | ${settle_s:-did not settle} s | TTL + one renewal period = ${bound} s | | $([ -n "$settle_s" ] && awk -v s="$settle_s" -v b="$bound" 'BEGIN {print (s+0 <= b+0) ? "met" : "**missed**"}' || echo "**missed**") |"
  echo
  echo "Load average (1, 5, 15 min) when the settle run ended: $settle_load, on $(nproc) cores."
} >"$work/leases.md"
[ -n "$settle_s" ] || { say "the loaders did not settle"; bad_leases=1; }
