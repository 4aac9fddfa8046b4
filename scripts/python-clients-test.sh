#!/usr/bin/env bash
# The Python clients' tests (clients/python), against the real server binary
# and a real PostgreSQL, with the real Telethon and Pyrogram from PyPI.
#
#   scripts/python-clients-test.sh [pytest arguments...]
#
# Makes a venv under target/pyvenv (python3 >= 3.9; installed with apt-get
# when missing and this runs as root), installs the package as operators do
# (pip install ./clients/python[telethon,pyrogram]) with pytest, builds the
# debug binary unless VIBEE_SESSIONS_BIN names one, and runs pytest. Each test
# makes its own database from a template (see clients/python/tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

say() { printf 'python-clients-test: %s\n' "$*" >&2; }

python_ok() {
  command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1
}

if ! python_ok; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "python3 (>= 3.9, with venv and ensurepip) is missing: installing it with apt-get ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
  fi
  if ! python_ok; then
    say "python3 >= 3.9 with the venv module is needed and is not installed."
    say "  Debian/Ubuntu: apt-get install python3 python3-venv python3-pip; then run this again."
    exit 1
  fi
fi

venv=target/pyvenv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "creating $venv ..."
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
if ! "${pip[@]}" install 'pytest>=7' 'httpx>=0.24,<1' 'telethon>=1.45,<2' 'pyrogram==2.0.106'; then
  say "pip could not install pytest, httpx, telethon and pyrogram from PyPI (is PyPI reachable?)."
  exit 1
fi
# TgCrypto only speeds Pyrogram up; the tests do not need it.
"${pip[@]}" install 'tgcrypto>=1.2' >/dev/null 2>&1 || say "tgcrypto did not install (optional; Pyrogram falls back to pure Python)"
# The package the way the README installs it; reinstalled so it is never stale.
"${pip[@]}" install --force-reinstall --no-deps './clients/python[telethon,pyrogram]'

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
ensure_postgres "$TEST_DATABASE_URL"

if [ -z "${VIBEE_SESSIONS_BIN:-}" ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is not installed and VIBEE_SESSIONS_BIN is not set: install Rust with rustup (https://rustup.rs)."
    exit 1
  fi
  cargo build --locked --bin vibee-sessions >&2
  # Where cargo put it (CARGO_TARGET_DIR may move target/).
  VIBEE_SESSIONS_BIN=$(cargo metadata --format-version 1 --no-deps |
    "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/vibee-sessions
fi
export VIBEE_SESSIONS_BIN

cd clients/python
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
../../"$venv"/bin/python -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log" || status=$?
# The summary again in cargo's form, so scripts/test.sh adds these to its counts.
summary=$(grep -E '^=*[ ]*[0-9]+ (passed|failed)|^[0-9]+ (passed|failed)' "$log" | tail -n 1 || true)
passed=$(printf '%s' "$summary" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' || true)
failed=$(printf '%s' "$summary" | grep -Eo '[0-9]+ (failed|errors?)' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}' || true)
[ "$status" = 0 ] && result=ok || result=FAILED
echo "python clients: test result: $result. ${passed:-0} passed; ${failed:-0} failed;"
exit "$status"
