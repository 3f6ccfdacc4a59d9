#!/usr/bin/env bash
# Sets up costwise on a Debian bookworm machine with Python 3.11 (run as root, idempotent).
#   bash .ci/setup.sh             Python environment in .venv (enough for `costwise demo`)
#   bash .ci/setup.sh --services  also installs and starts what the tests use: PostgreSQL,
#                                 the Docker engine, Prometheus, Chromium
set -euo pipefail
cd "$(dirname "$0")/.."
services=false
[[ "${1:-}" == "--services" ]] && services=true

apt_packages=()
PY=$(command -v python3.11 || command -v python3)
"$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv python3-pip)
if $services; then
  command -v pg_ctlcluster >/dev/null || apt_packages+=(postgresql)
  command -v dockerd >/dev/null || apt_packages+=(docker.io)
  command -v prometheus >/dev/null || apt_packages+=(prometheus)
  command -v chromium >/dev/null || apt_packages+=(chromium)
  command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
  command -v busybox >/dev/null || apt_packages+=(busybox-static)
fi
if ((${#apt_packages[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  PY=$(command -v python3.11 || command -v python3)
fi

if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[all,test]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import scheduler' >/dev/null
# bytecode now: PYTHONDONTWRITEBYTECODE=1 here means an editable install would recompile every CLI call
.venv/bin/python -m compileall -q -j 0 scheduler provider >/dev/null

$services || exit 0

# The FinOps Foundation's FOCUS validator (tests/integration/test_focus_validator.py) needs Python 3.12,
# which Debian bookworm does not package: its own venv in .venv-focus from a pyenv 3.12 (or a python3.12
# on PATH). Without one, say so and go on: that test then fails under CI naming the reason.
FOCUS_VALIDATOR="focus-validator==2.2.1"
if [[ "$(cat .venv-focus/.costwise-installed 2>/dev/null)" != "$FOCUS_VALIDATOR" ]]; then
  PY312=""
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12 /usr/local/bin/python3.12 \
                   /usr/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [[ -x "$candidate" ]] && "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      PY312=$candidate
    fi
  done
  if [[ -z "$PY312" ]]; then
    echo "setup: no Python 3.12 found (pyenv's ${PYENV_ROOT:-$HOME/.pyenv}/versions/3.12.*, or python3.12 on PATH):" \
         "the FOCUS validator is not installed and tests/integration/test_focus_validator.py fails under CI" >&2
  else
    rm -rf .venv-focus
    "$PY312" -m venv .venv-focus
    # its polars/pyarrow imports need numpy 2 despite its own numpy<2 pin; it runs fine on it
    .venv-focus/bin/pip install -q --disable-pip-version-check "$FOCUS_VALIDATOR" 2>&1 | grep -v '^WARNING: Location' || true
    .venv-focus/bin/pip install -q --disable-pip-version-check 'numpy>=2' 2>&1 \
      | grep -v "^WARNING: Location\|dependency resolver\|requires numpy<2" || true
    if .venv-focus/bin/python -c 'import focus_validator, numpy' 2>/dev/null; then
      echo "$FOCUS_VALIDATOR" > .venv-focus/.costwise-installed
    else
      echo "setup: $FOCUS_VALIDATOR did not install in .venv-focus (pip's output is above)" >&2
    fi
  fi
fi

bash .ci/services.sh
