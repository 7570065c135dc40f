#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the store tests and print its URL.
# Installs Debian's postgresql when the machine has none. Output on stdout: the SQLAlchemy URL,
# then the server's data folder (to stop it with pg_ctl when done).
set -euo pipefail
# A free loopback port, so that a server left from an earlier run never gets in the way.
port="${RTCHECK_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
data=$(mktemp -d /tmp/rtcheck-pg.XXXXXX)
chown postgres "$data"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_postgres "$bindir/initdb" -D "$data" --auth=trust --username=postgres >/dev/null
as_postgres "$bindir/pg_ctl" -D "$data" -o "-p $port -k $data -c listen_addresses=127.0.0.1" \
  -l "$data/server.log" -w start >/dev/null
as_postgres "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres rtcheck_test
echo "postgresql+psycopg://postgres@127.0.0.1:$port/rtcheck_test"
echo "$data"
