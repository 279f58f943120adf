#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster in a temp folder,
# 127.0.0.1 only, on a free port, trust auth for the test user (any other user needs a password).
#
#   eval "$(scripts/pg_ci.sh start)"   # prints: export SYNTHGATE_TEST_POSTGRES_URL=... SYNTHGATE_PG_CI_DIR=...
#   scripts/pg_ci.sh stop              # stops the server and removes $SYNTHGATE_PG_CI_DIR
#
# Needs Debian's postgresql package (apt-get install postgresql). initdb refuses to run as root, so
# under root the cluster belongs to the package's "postgres" user. Progress goes to stderr.
set -euo pipefail

TEST_USER=synthgate_test

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "pg_ci.sh: no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2
    exit 1
  fi
  echo "$d"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local bin dir port
  bin=$(pg_bin)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/synthgate-pg.XXXXXX")
  chmod 700 "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  port=$(free_port)
  as_owner "$bin/initdb" -D "$dir/data" -U "$TEST_USER" --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # trust for the test user on loopback; every other role must give its password (the tests of
  # wrong credentials make such a role)
  {
    echo "local all all trust"
    echo "host all $TEST_USER 127.0.0.1/32 trust"
    echo "host all all 127.0.0.1/32 scram-sha-256"
  } | as_owner tee "$dir/data/pg_hba.conf" >/dev/null
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=100 -c fsync=off" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
  echo "pg_ci.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)" >&2
  echo "export SYNTHGATE_TEST_POSTGRES_URL=postgresql://$TEST_USER@127.0.0.1:$port/postgres"
  echo "export SYNTHGATE_PG_CI_DIR=$dir"
}

stop() {
  local dir=${SYNTHGATE_PG_CI_DIR:-}
  if [ -z "$dir" ] || [ ! -d "$dir/data" ]; then
    echo "pg_ci.sh: nothing to stop (SYNTHGATE_PG_CI_DIR unset or gone)" >&2
    return 0
  fi
  as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
