# The vibee-sessions binary for the scripts: $VIBEE_SESSIONS_BIN when set,
# else one on PATH, else a release build of this checkout (built when missing).
vibee_sessions_bin() {
  if [ -n "${VIBEE_SESSIONS_BIN:-}" ]; then
    printf '%s\n' "$VIBEE_SESSIONS_BIN"
    return
  fi
  if command -v vibee-sessions >/dev/null 2>&1; then
    command -v vibee-sessions
    return
  fi
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ ! -x "$root/target/release/vibee-sessions" ]; then
    echo "building vibee-sessions (cargo build --release) ..." >&2
    (cd "$root" && cargo build --release --locked --quiet) >&2
  fi
  printf '%s\n' "$root/target/release/vibee-sessions"
}
