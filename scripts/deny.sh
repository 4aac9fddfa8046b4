#!/usr/bin/env bash
# Supply-chain checks that work offline: licences, banned crates, sources
# (cargo-deny, deny.toml). RustSec advisories are not checked: their database
# is a git repository this machine cannot fetch (docs/RELIABILITY.md).
# Installs cargo-deny from crates.io when missing (a few minutes of compile,
# once); later runs reuse the installed binary.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (cargo install --locked cargo-deny) ..." >&2
  cargo install --locked cargo-deny
fi
cargo deny --offline check bans licenses sources
