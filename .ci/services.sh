#!/usr/bin/env bash
# Starts the real services the integration tests use; safe to run when they already run.
set -euo pipefail

# PostgreSQL: role and database costwise/costwise on 127.0.0.1:5432
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [[ -z "$cluster" ]]; then
  pg_createcluster 15 main >/dev/null
  cluster="15 main"
fi
pg_ctlcluster $cluster start 2>/dev/null || true
for _ in $(seq 50); do su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break; sleep 0.2; done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='costwise'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"create role costwise login password 'costwise' superuser\""
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='costwise_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O costwise costwise_test"

# Docker engine
if ! docker info >/dev/null 2>&1; then
  (nohup dockerd >/var/log/costwise-dockerd.log 2>&1 &)
  for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/costwise-dockerd.log" >&2; exit 1; }
echo "services: postgresql and docker are up"
