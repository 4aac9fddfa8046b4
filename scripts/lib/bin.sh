# shellcheck shell=bash
# The vibee-sessions binary for the scripts: $VIBEE_SESSIONS_BIN when set;
# else, in a checkout with cargo, its release build (built when missing or
# older than the sources); else one on PATH.
vibee_sessions_bin() {
  if [ -n "${VIBEE_SESSIONS_BIN:-}" ]; then
    printf '%s\n' "$VIBEE_SESSIONS_BIN"
    return
  fi
  local root bin
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  bin="$root/target/release/vibee-sessions"
  if [ -f "$root/Cargo.toml" ] && command -v cargo >/dev/null 2>&1; then
    if [ ! -x "$bin" ] || [ -n "$(cd "$root" && find src migrations Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
      echo "building vibee-sessions (cargo build --release; a few minutes the first time) ..." >&2
      (cd "$root" && cargo build --release --locked --bin vibee-sessions) >&2
    fi
    printf '%s\n' "$bin"
    return
  fi
  if command -v vibee-sessions >/dev/null 2>&1; then
    command -v vibee-sessions
    return
  fi
  echo "vibee-sessions is not built and cargo is not installed: install Rust with rustup (https://rustup.rs) and run this again." >&2
  return 1
}
