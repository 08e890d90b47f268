#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the tests, installing
# Debian's server package first when it is missing. Prints the URL to use as
# TASKFORCE_TEST_POSTGRES_URL. Idempotent: a running cluster is reused.
#   scripts/postgres.sh start   # default
#   scripts/postgres.sh stop
set -euo pipefail
PGPORT="${TASKFORCE_PG_PORT:-55432}"
PGDATA_DIR="${TASKFORCE_PG_DIR:-/tmp/taskforce-pg-$PGPORT}"
action="${1:-start}"

find_bin() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$b" ] && [ -x "$b/initdb" ] && echo "$b"
}

as_owner() {
  # PostgreSQL refuses to run as root: use the postgres system user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

BIN=$(find_bin || true)
if [ "$action" = stop ]; then
  [ -n "$BIN" ] && [ -d "$PGDATA_DIR" ] && as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi

if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is not installed; run as root or: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "installing PostgreSQL (Debian package)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BIN=$(find_bin)
fi

if ! as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDATA_DIR"
    as_owner "$BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PGDATA_DIR -c fsync=off -c max_connections=200" start >/dev/null
fi
echo "postgresql://postgres@127.0.0.1:$PGPORT/postgres"
