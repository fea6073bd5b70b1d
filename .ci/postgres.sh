#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for tests and print its URL on stdout.
#
#   export TEST_POSTGRES_URL=$(.ci/postgres.sh)
#
# Installs Debian's postgresql when initdb is missing, creates the cluster in a fresh temp
# folder owned by a non-root user (postgres refuses to run as root), listens on a free
# loopback port with trust auth (the cluster is private to this machine and disposable),
# and creates database "herald". Everything else goes to stderr, including how to stop it.
set -euo pipefail

find_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

BIN=$(find_bin || true)
if [ -z "$BIN" ]; then
    echo "postgres.sh: installing postgresql with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
fi

RUN_AS=()
OWNER=$(id -un)
if [ "$(id -u)" = 0 ]; then
    OWNER=postgres
    if ! id "$OWNER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$OWNER"
    fi
    RUN_AS=(runuser -u "$OWNER" --)
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/herald-pg.XXXXXX")
chmod 700 "$DIR"
chown "$OWNER" "$DIR"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"${RUN_AS[@]}" "$BIN/initdb" -D "$DIR/data" -U herald --auth=trust -E UTF8 --no-instructions >&2
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >&2
"${RUN_AS[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U herald herald >&2

STOP="${RUN_AS[*]} $BIN/pg_ctl -D $DIR/data stop -m fast && rm -rf $DIR"
echo "postgres.sh: stop with: $STOP" >&2
# With PG_STOP_FILE set, the stop command is also written there (for a caller's exit trap).
if [ -n "${PG_STOP_FILE:-}" ]; then
    echo "$STOP" >"$PG_STOP_FILE"
fi
echo "postgresql://herald@127.0.0.1:$PORT/herald"
