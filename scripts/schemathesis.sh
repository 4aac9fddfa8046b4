#!/usr/bin/env bash
# Property-based run of the served OpenAPI document (schemathesis, PyPI):
# starts `serve` on a throw-away database with a session in it, fetches
# GET /api/v1/openapi.json with an admin token, and lets schemathesis send
# generated valid and invalid requests to every operation. Exits non-zero on
# any failed check (a 5xx, a status or body the document does not describe).
#
#   scripts/schemathesis.sh                 MAX_EXAMPLES=100 per operation
#   MAX_EXAMPLES=200 scripts/schemathesis.sh
#   VIBEE_SESSIONS_BIN=path scripts/schemathesis.sh   that binary, no build
#
# schemathesis is installed in a venv under target/ (pinned below). The
# database server: TEST_DATABASE_URL, else DATABASE_URL, else the local one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

version=3.39.16
# schemathesis 3.39 breaks on Hypothesis > 6.131.14 ("'many' object has no attribute 'more'").
hypothesis=6.131.14
max_examples=${MAX_EXAMPLES:-100}
checks=${CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
ensure_postgres "$admin_url"

venv=target/schemathesis-venv
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version" || ! "$venv/bin/pip" show hypothesis 2>/dev/null | grep -q "^Version: $hypothesis\$"; then
  echo "installing schemathesis $version into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version" "hypothesis==$hypothesis"
fi

if [ -n "${VIBEE_SESSIONS_BIN:-}" ]; then
  bin=$VIBEE_SESSIONS_BIN
else
  cargo build --locked --bin vibee-sessions
  bin=target/debug/vibee-sessions
fi
out=target/schemathesis
mkdir -p "$out"
source scripts/lib/scratch.sh
source scripts/lib/server.sh
scratch_database "$admin_url" "vs_schemathesis_$$" "$bin"
token=$(server_token "$bin" schemathesis)
: >"$out/serve.log"
server_start "$bin" "$out/serve.log" -- --no-migrate
base=$server_url
# Something for the generated ids to find now and then.
curl -fsS -o /dev/null -X POST "$base/api/v1/sessions" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d '{"user_id":"st-user","api_id":1,"api_hash":"0123456789abcdef0123456789abcdef","session_id":"st-session"}'
curl -fsS -H "authorization: Bearer $token" "$base/api/v1/openapi.json" >"$out/openapi.json"

start=$(date +%s)
status=0
# Hypothesis' storage (its caches; --hypothesis-derandomize keeps no example
# database) under target/, not in the checkout's .hypothesis/.
export HYPOTHESIS_STORAGE_DIRECTORY=$out/hypothesis
st_run() {
  "$venv/bin/st" run "$out/openapi.json" --base-url "$base" \
    -H "Authorization: Bearer $token" \
    --hypothesis-max-examples "$max_examples" \
    --hypothesis-derandomize \
    --hypothesis-deadline 5000 \
    --request-timeout 35000 \
    --generation-allow-x00 true \
    --data-generation-method all \
    --experimental=openapi-3.1 \
    --no-color "$@" </dev/null 2>&1 | tee -a "$out/report.txt" || status=$?
}
: >"$out/report.txt"
# Negative generation puts control characters into header values (If-Match,
# Lease-Fence); hyper refuses such a request before the application with a
# bare 400. scripts/lib/schemathesis_hooks.py drops those header sets, so
# every operation keeps every check.
export PYTHONPATH=$PWD/scripts/lib SCHEMATHESIS_HOOKS=schemathesis_hooks
st_run --checks "$checks"
echo "scripts/schemathesis.sh: $(( $(date +%s) - start ))s, exit $status"
kill -0 "$server_pid" || { echo "the server died"; exit 1; }
exit $status
