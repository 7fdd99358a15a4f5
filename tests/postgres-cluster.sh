#!/usr/bin/env bash
# A throw-away PostgreSQL for the tests (unit and end-to-end alike): one cluster in DIR, listening on
# 127.0.0.1:PORT only (and a socket in DIR), superuser `magpie` with trust authentication on loopback, and a
# database `magpie`. initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
#   tests/postgres-cluster.sh start DIR PORT   initdb, start, create the database (exit 0 when ready); the port
#                                              it listens on is in DIR/port: PORT, or another one when
#                                              something took PORT between the caller's choice and the bind
#                                              (two test processes can be handed the same free port)
#   tests/postgres-cluster.sh stop DIR         fast shutdown
#   tests/postgres-cluster.sh discard DIR      immediate shutdown, for a cluster whose files are deleted next:
#                                              a fast shutdown's checkpoint writes every page the tests dirtied
#                                              (11 s for 60 databases on a quiet machine, 40 s and more at the
#                                              end of a loaded e2e run), for nothing
#   tests/postgres-cluster.sh restart DIR      fast shutdown and start again (clients lose their connections)
#   tests/postgres-cluster.sh resume DIR       start again after a stop (an outage of the tests' choosing)
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "postgres-cluster: no PostgreSQL under /usr/lib/postgresql (scripts/install-deps.sh)" >&2; exit 2; }
as=()
[ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)

case "${1:-}" in
start)
    dir=$2 port=$3
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U magpie --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # fsync stays on: the tests measure and rely on durable commits like production.
    for attempt in 1 2 3 4 5; do
        # pg_ctl appends to the log: each try reads only its own lines.
        [ -f "$dir/server.log" ] && : >"$dir/server.log"
        echo "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c shared_buffers=32MB" >"$dir/options"
        "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$(cat "$dir/options")" \
            start >/dev/null && break
        if [ "$attempt" -lt 5 ] && grep -q "could not bind IPv4 address" "$dir/server.log"; then
            port=$(shuf -i 20000-59999 -n 1)  # a random one this time; a taken one fails the bind again
            continue
        fi
        cat "$dir/server.log" >&2
        exit 1
    done
    echo "$port" >"$dir/port"
    "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U magpie magpie
    ;;
stop)
    dir=$2
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    ;;
discard)
    dir=$2
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null
    ;;
restart)
    dir=$2
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
    ;;
resume)
    dir=$2
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$(cat "$dir/options")" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR | discard DIR | restart DIR | resume DIR" >&2
    exit 2
    ;;
esac
