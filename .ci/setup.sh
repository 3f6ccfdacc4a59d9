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
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import scheduler' >/dev/null

$services || exit 0
bash .ci/services.sh
