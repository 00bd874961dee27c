#!/usr/bin/env bash
# PostgreSQL and Redis on loopback for the fleet tests (shared store, virtual keys, limits
# across replicas): installs Debian's packages when missing, starts the cluster and the server
# if they are not running, and creates the `switchyard` role and database. Idempotent.
# Prints nothing on success; the tests read SWITCHYARD_TEST_POSTGRES / SWITCHYARD_TEST_REDIS
# (defaults below).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi
if ! command -v pg_ctlcluster >/dev/null || ! command -v redis-server >/dev/null; then
  echo "setup: installing postgresql and redis-server from Debian's packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql redis-server >/dev/null
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  $SUDO pg_ctlcluster "$version" main start
fi
psql_admin() { $SUDO su postgres -c "psql -v ON_ERROR_STOP=1 -qAt -c \"$1\""; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'switchyard'")" != 1 ]; then
  psql_admin "CREATE ROLE switchyard LOGIN CREATEDB PASSWORD 'switchyard'"
fi
# the tests create a database each
psql_admin "ALTER ROLE switchyard CREATEDB"
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'switchyard'")" != 1 ]; then
  psql_admin "CREATE DATABASE switchyard OWNER switchyard"
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
