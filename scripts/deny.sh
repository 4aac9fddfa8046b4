#!/usr/bin/env bash
# Supply-chain checks that work offline (cargo-deny, deny.toml): licences,
# banned crates, sources, and RustSec advisories from a local snapshot of the
# advisory database.
#
#   ADVISORY_DB=/path/to/advisory-db scripts/deny.sh
#
# ADVISORY_DB names a local copy of the RustSec advisory database (a checkout,
# or a snapshot with a SNAPSHOT file naming its commit and date); .ci/run
# passes the one its CI machine keeps. The snapshot is copied under target/ and made a git repository, since
# cargo-deny reads the database through git; no network is used. Without a
# snapshot the advisories check is skipped, and the script says so.
# Installs cargo-deny from crates.io when missing (a few minutes of compile,
# once); later runs reuse the installed binary.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (cargo install --locked cargo-deny) ..." >&2
  cargo install --locked cargo-deny
fi
# cargo-deny reads the metadata of every platform's dependencies (wasm,
# android, windows crates too), which a Linux build never downloads: fetch
# them first (crates.io), so the checks themselves can run offline.
cargo fetch --locked
cargo deny --offline check bans licenses sources

snapshot=${ADVISORY_DB:-}
if [ -z "$snapshot" ] || [ ! -d "$snapshot/crates" ]; then
  echo "deny.sh: SKIPPED the RustSec advisories check: no advisory database at ${snapshot:-(ADVISORY_DB unset)}" >&2
  echo "deny.sh: set ADVISORY_DB to a checkout of the RustSec advisory-db to run it" >&2
  exit 0
fi
# cargo-deny keeps the default database (github.com/rustsec/advisory-db) in a
# directory named after a hash of that URL; --offline makes it use it as is.
db_root=target/advisory-db
db_dir=$db_root/advisory-db-3157b0e258782691
rm -rf "$db_root"
mkdir -p "$db_root"
cp -r "$snapshot" "$db_dir"
(
  cd "$db_dir"
  git init -q
  git add -A
  git -c user.name=snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
    commit -q -m "advisory-db snapshot"
)
if [ -f "$snapshot/SNAPSHOT" ]; then
  echo "deny.sh: advisories from: $(head -n 1 "$snapshot/SNAPSHOT")"
fi
config=$(mktemp)
trap 'rm -f "$config"' EXIT
# deny.toml plus the database location (db-path is not relative to the config).
cat deny.toml > "$config"
printf '\n[advisories]\ndb-path = "%s"\n' "$PWD/$db_root" >> "$config"
cargo deny --offline --config "$config" check advisories
