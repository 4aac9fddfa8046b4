# The cost fencing adds to a blob write, for scripts/bench.sh (sourced; uses
# $root, $work, $tenants, $flags, $profile, say and the bench's DATABASE_URL
# and MASTER_KEY). Writes $work/fence.md, which bench.sh appends to the report.
#   FENCE_WRITES  sessions per kind (default: a tenth of $tenants, at most 500)
#   FENCE_ROUNDS  writes per session (default 5)
fence_n=${FENCE_WRITES:-$(( tenants / 10 < 500 ? (tenants / 10 > 1 ? tenants / 10 : 1) : 500 ))}
fence_rounds=${FENCE_ROUNDS:-5}
say "fencing: $fence_n fenced and $fence_n unfenced blob writes, $fence_rounds rounds"
cargo build "${flags[@]}" --locked --example fence_bench >&2
# The settle run's loaders are gone; their leases may still look live.
sql -c "DELETE FROM session_leases"
if "$root/target/$profile/examples/fence_bench" "$fence_n" "$fence_rounds" >"$work/fence-bench.out"; then
  fb() { awk -v k="$1" '$1 == k {print $2}' "$work/fence-bench.out"; }
  fence_ratio=$(fb ratio)
  fence_verdict=$(awk -v r="$fence_ratio" 'BEGIN {print (r+0 <= 1.15) ? "met" : "**missed**"}')
else
  say "fence_bench failed"
  bad_fence=1
  fb() { echo "?"; }
  fence_ratio="?" fence_verdict="**missed** (the run failed)"
fi
{
  echo
  echo "## Fencing"
  echo
  echo "\`PUT …/data\`'s store write on one connection (\`examples/fence_bench.rs\`, $(fb blob_bytes)-byte blob),"
  echo "$(fb writes) writes of each kind, one of each in turn; median of one write."
  echo
  echo "| what | figure | reference | ratio | target |"
  echo "|---|---|---|---|---|"
  echo "| blob write under a live lease with its fence (Lease-Fence) | $(fb fenced_ms) ms | no lease, no fence $(fb unfenced_ms) ms | $fence_ratio | <= 1.15 x: $fence_verdict |"
} >"$work/fence.md"
