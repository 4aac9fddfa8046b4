#!/usr/bin/env bash
# The operator console in a real browser: Debian's headless Chromium driven by
# Playwright (PyPI, in a venv under target/) against a real `vibee-sessions
# serve` on a scratch database seeded with 10,000 tenants. Screenshots of
# every page go to target/console/screenshots/.
#
#   scripts/console-test.sh
#
# Installs what it needs: chromium (apt-get, as root), the venv. Never runs
# `playwright install` (that downloads a browser): Playwright drives
# /usr/bin/chromium. The server: TEST_DATABASE_URL, else the local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

admin_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
ensure_postgres "$admin_url"

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium (apt-get) ..." >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
  else
    echo "/usr/bin/chromium is missing: run 'apt-get update && apt-get install -y chromium' as root." >&2
    exit 1
  fi
fi

out=target/console
venv=$out/venv
mkdir -p "$out"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import playwright, httpx' 2>/dev/null; then
  echo "setting up $venv (playwright, httpx from PyPI) ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'playwright==1.65.*' 'httpx==0.28.*' >&2
fi

# The console embedded in this build must be the one its sources give.
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing Debian's nodejs and npm (apt-get) ..." >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >&2 || true
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  scripts/console-build.sh --check
else
  echo "note: Node.js/npm are not installed (apt-get install nodejs npm); console/dist is not compared with its sources" >&2
fi

cargo build --bin vibee-sessions --example seed_sessions >&2
bin=$PWD/target/debug/vibee-sessions

source scripts/lib/scratch.sh
scratch_database "$admin_url" "vs_console_$$" "$bin"
target/debug/examples/seed_sessions 10000 >&2
admin_token=$("$bin" token create --name console-admin --scope admin)
list_token=$("$bin" token create --name console-lister --scope sessions:list)

source scripts/lib/server.sh
log=$out/serve.log
: >"$log"
server_start "$bin" "$log" || exit 1

rm -rf "$out/screenshots"
CONSOLE_BASE=$server_url ADMIN_TOKEN=$admin_token LIST_TOKEN=$list_token \
  VIBEE_BIN=$bin SHOTS_DIR=$out/screenshots \
  "$venv/bin/python" tests/console/console_test.py
echo "screenshots: $out/screenshots/"
