#!/usr/bin/env bash
# A project-local PostgreSQL cluster for the tests and benchmarks: Debian's PostgreSQL server, run as the `postgres`
# system user the package creates (PostgreSQL refuses to run as root), listening on 127.0.0.1 with TLS and on a Unix
# socket in the cluster's directory, password (SCRAM) authentication only. Durable defaults: fsync and
# synchronous_commit stay on.
#
#   scripts/pg-cluster.sh start          initialise if needed (superuser `metertrust`, a random password), start
#   scripts/pg-cluster.sh stop           stop it (fast shutdown)
#   scripts/pg-cluster.sh status         exit 0 if running
#   scripts/pg-cluster.sh env            print the shell variables the tests read (URL, password file, CA file)
#   scripts/pg-cluster.sh run -- CMD...  start, run CMD with those variables, stop, exit with CMD's status
#   scripts/pg-cluster.sh destroy        stop and remove the cluster's directory
#
# METERTRUST_PG_DIR (default: .pg in the project, or a directory under /tmp if the postgres user cannot reach the
# project) and METERTRUST_PG_PORT (default 55432) choose where. Runs from any directory.
set -euo pipefail

project="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# shellcheck source=scripts/pg-lib.sh
. "$project/scripts/pg-lib.sh"

cluster_dir() { reachable_dir "${METERTRUST_PG_DIR:-}" .pg metertrust-pg; }

dir="$(cluster_dir)"
# The port: METERTRUST_PG_PORT, else the one this cluster was made with (several checkouts on one machine each have
# their own cluster), else 55432 or the next free one, chosen when the cluster is made.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -n "${METERTRUST_PG_PORT:-}" ]; then
    port="$METERTRUST_PG_PORT"
elif [ -f "$dir/port" ]; then
    port="$(cat "$dir/port")"
else
    port=55432
    while ! port_free "$port" || [ "$port" = 55442 ] || [ "$port" = 55443 ]; do
        port=$((port + 1))
        [ "$port" -lt 55532 ] || die "no free port in 55432–55531 for the PostgreSQL test cluster: set METERTRUST_PG_PORT"
    done
fi
data="$dir/data"
socket="$dir/socket"

export_env() {
    cat <<EOF
export METERTRUST_TEST_POSTGRES_URL='postgres://metertrust@127.0.0.1:$port/postgres?sslmode=verify-full'
export METERTRUST_TEST_POSTGRES_SOCKET='$socket'
export METERTRUST_TEST_POSTGRES_PORT='$port'
export METERTRUST_TEST_POSTGRES_PASSWORD_FILE='$dir/password'
export METERTRUST_TEST_POSTGRES_CA_FILE='$dir/tls/ca.crt'
export METERTRUST_TEST_POSTGRES_BIN='$(bindir)'
EOF
}

running() {
    [ -f "$data/postmaster.pid" ] && as_postgres "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1
}

initialise() {
    local bin; bin="$(bindir)"
    id postgres >/dev/null 2>&1 || die "the postgres system user is missing: reinstall Debian's postgresql package"
    [ ${#socket} -le 100 ] || die "the socket directory $socket is too long for a Unix socket (at most 107 octets): set METERTRUST_PG_DIR"
    rm -rf "$dir"
    mkdir -p "$dir/tls" "$socket" "$dir/log"
    chmod 0755 "$dir"
    echo "$port" > "$dir/port"
    # The clients' copy of the password: 0600, owned by whoever runs the tests.
    make_password_and_tls "$dir/password" "$dir/tls" "MeterTrust test PostgreSQL CA"
    mkdir -p "$data"
    chown postgres: "$data" "$socket" "$dir/log" "$dir/tls/server.key" "$dir/tls/server.crt"
    chmod 0700 "$data"; chmod 0600 "$dir/tls/server.key"
    # initdb reads the password from a file only the postgres user can read, removed straight after.
    mkdir -m 0700 "$dir/init"; chown postgres: "$dir/init"
    local pwfile="$dir/init/password"
    as_postgres install -m 0600 /dev/null "$pwfile"
    as_postgres tee "$pwfile" >/dev/null < "$dir/password"
    as_postgres "$bin/initdb" -D "$data" -U metertrust --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -rf "$dir/init"
    as_postgres tee -a "$data/postgresql.conf" >/dev/null <<EOF
# MeterTrust test cluster (scripts/pg-cluster.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$socket'
ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
ssl_min_protocol_version = 'TLSv1.3'
password_encryption = 'scram-sha-256'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
# Fewer checkpoints under bulk issuance (each one makes every page's next change a full-page image in the WAL).
max_wal_size = 4GB
checkpoint_timeout = 15min
default_transaction_isolation = 'read committed'
log_min_messages = warning
EOF
}

start() {
    if running; then return 0; fi
    [ -f "$data/PG_VERSION" ] || initialise
    without_inherited_fds as_postgres "$(bindir)/pg_ctl" -D "$data" -l "$dir/log/server.log" -w -t 60 start >/dev/null \
        || { tail -20 "$dir/log/server.log" >&2; die "PostgreSQL did not start (log: $dir/server.log)"; }
}

stop() {
    if running; then as_postgres "$(bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
}

case "${1:-}" in
    start) start; echo "PostgreSQL test cluster running on 127.0.0.1:$port and $socket ($dir)" >&2 ;;
    stop) stop ;;
    status) running ;;
    env) export_env ;;
    run) shift; run_with_servers scripts/pg-cluster.sh "$@" ;;
    destroy) stop; rm -rf "$dir" ;;
    *) echo "usage: scripts/pg-cluster.sh start|stop|status|env|run -- CMD|destroy" >&2; exit 2 ;;
esac
