# shellcheck shell=bash
# Shared by scripts/bench.sh and scripts/bench/scale.sh (sourced after `cd`
# to the repository and `source scripts/lib/postgres.sh`, with $profile,
# $admin_url, $root and `say` set): installs the load tools when missing
# (only those named in $bench_tools when it is set), makes sure PostgreSQL
# runs, builds the binaries. Sets flags, bin, seed.
# --- tools ---------------------------------------------------------------
need_pkgs=()
for tool in ${bench_tools:-wrk pgbench psql}; do
  command -v "$tool" >/dev/null && continue
  case $tool in
    wrk) need_pkgs+=(wrk) ;;
    pgbench) need_pkgs+=(postgresql-contrib) ;;
    psql) need_pkgs+=(postgresql-client) ;;
  esac
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need_pkgs[*]} from Debian"
    apt-get install -y "${need_pkgs[@]}" >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y "${need_pkgs[@]}" >/dev/null; }
  else
    say "missing tools: install ${need_pkgs[*]} (Debian: sudo apt-get install ${need_pkgs[*]})"
    exit 1
  fi
fi
ensure_postgres "$admin_url"

# --- binaries ------------------------------------------------------------
flags=()
[ "$profile" = release ] && flags=(--release)
if [ -z "${VIBEE_SESSIONS_BIN:-}" ] || [ -z "${SEED_BIN:-}" ]; then
  say "building ($profile) ..."
  cargo build "${flags[@]}" --locked --bin vibee-sessions --example seed_sessions >&2
fi
bin=${VIBEE_SESSIONS_BIN:-$root/target/$profile/vibee-sessions}
seed=${SEED_BIN:-$root/target/$profile/examples/seed_sessions}

