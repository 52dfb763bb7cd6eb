#!/usr/bin/env bash
# A project-local PostgreSQL primary with a synchronous streaming standby, for the fail-over test and for rehearsing
# the operator's procedure (docs/operations-postgres.md). Debian's PostgreSQL server, run as the `postgres` system
# user (PostgreSQL refuses to run as root), both nodes on 127.0.0.1 with TLS (a throw-away CA, verify-full) and SCRAM
# passwords only, each also on a Unix socket in its own directory. Durable settings: fsync on, synchronous_commit = on,
# synchronous_standby_names naming the standby, so a commit returns only once the standby has flushed it to disk.
#
#   scripts/pg-ha.sh start           initialise if needed (node a primary, node b its standby by pg_basebackup -R),
#                                    start both, wait until the standby streams and is synchronous
#   scripts/pg-ha.sh status          the nodes, their roles and pg_stat_replication; exit 0 if the primary runs
#   scripts/pg-ha.sh env             print the shell variables the tests read (URLs, password file, CA file, ...)
#   scripts/pg-ha.sh crash           SIGKILL the primary's postmaster and all its children at once (a drill: the
#                                    machine is gone, nothing is flushed or shut down cleanly)
#   scripts/pg-ha.sh promote [--force]
#                                    promote the standby (pg_ctl promote); refused while the old primary still runs
#                                    (two writable primaries) unless --force. The new primary runs without a
#                                    synchronous standby until `rebuild`
#   scripts/pg-ha.sh rebuild         make the other node a new synchronous standby of the current primary (its old
#                                    data discarded, a fresh pg_basebackup -R); refused while it runs as a primary
#   scripts/pg-ha.sh stop            stop both nodes (fast shutdown)
#   scripts/pg-ha.sh run -- CMD...   start, run CMD with the variables of `env`, stop, exit with CMD's status
#   scripts/pg-ha.sh destroy         stop both and remove the directory
#
# METERTRUST_PG_HA_DIR (default: .pg-ha in the project, or a directory under /tmp if the postgres user cannot reach
# the project), METERTRUST_PG_HA_PORT (node a, default 55442) and METERTRUST_PG_HA_STANDBY_PORT (node b, default the
# next port) choose where; they must not collide with scripts/pg-cluster.sh's 55432. Runs from any directory.
set -euo pipefail

project="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port_a="${METERTRUST_PG_HA_PORT:-55442}"
port_b="${METERTRUST_PG_HA_STANDBY_PORT:-$((port_a + 1))}"
database=metertrust

# shellcheck source=scripts/pg-lib.sh
. "$project/scripts/pg-lib.sh"

ha_dir() { reachable_dir "${METERTRUST_PG_HA_DIR:-}" .pg-ha metertrust-pg-ha; }

dir="$(ha_dir)"
[ "$port_a" != 55432 ] && [ "$port_b" != 55432 ] && [ "$port_a" != "$port_b" ] \
    || die "the ports $port_a and $port_b must differ from each other and from scripts/pg-cluster.sh's 55432"

data_of() { echo "$dir/$1/data"; }
socket_of() { echo "$dir/$1/socket"; }
port_of() { if [ "$1" = a ]; then echo "$port_a"; else echo "$port_b"; fi; }
other() { if [ "$1" = a ]; then echo b; else echo a; fi; }
# The node that is the primary now (recorded by initialise and promote).
primary() { if [ -f "$dir/primary" ]; then cat "$dir/primary"; else echo a; fi; }
standby() { other "$(primary)"; }

url_of() {
    echo "postgres://metertrust@127.0.0.1:$(port_of "$1")/$database?sslmode=verify-full&sslrootcert=$dir/tls/ca.crt"
}

export_env() {
    local p s; p="$(primary)"; s="$(standby)"
    cat <<EOF
export METERTRUST_PG_HA_PRIMARY_URL='$(url_of "$p")'
export METERTRUST_PG_HA_STANDBY_URL='$(url_of "$s")'
export METERTRUST_PG_HA_PRIMARY_NODE='$p'
export METERTRUST_PG_HA_STANDBY_NODE='$s'
export METERTRUST_PG_HA_PRIMARY_SOCKET='$(socket_of "$p")'
export METERTRUST_PG_HA_STANDBY_SOCKET='$(socket_of "$s")'
export METERTRUST_PG_HA_PRIMARY_PORT='$(port_of "$p")'
export METERTRUST_PG_HA_STANDBY_PORT='$(port_of "$s")'
export METERTRUST_PG_HA_PASSWORD_FILE='$dir/password'
export METERTRUST_PG_HA_CA_FILE='$dir/tls/ca.crt'
export METERTRUST_PG_HA_BIN='$(bindir)'
EOF
}

running() {
    local data; data="$(data_of "$1")"
    [ -f "$data/postmaster.pid" ] && as_postgres "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1
}

# SQL on a node as the superuser `metertrust`, over its Unix socket; the password from the environment, never argv.
sql() {
    local node="$1"; shift
    PGPASSWORD="$(cat "$dir/password")" psql -X -q -At -v ON_ERROR_STOP=1 -h "$(socket_of "$node")" -p "$(port_of "$node")" \
        -U metertrust -d postgres "$@"
}

# Runs a command with no file descriptor but 0-2 inherited: a server started from a process that watches its child's
# exit through an inherited descriptor (Foundation's Process does) would otherwise keep it open, and the caller would
# wait for the server instead of this script.

start_node() {
    local node="$1"
    running "$node" && return 0
    without_inherited_fds as_postgres "$(bindir)/pg_ctl" -D "$(data_of "$node")" -l "$dir/log/$node.log" -w -t 60 start >/dev/null \
        || { tail -20 "$dir/log/$node.log" >&2; die "PostgreSQL node $node did not start (log: $dir/log/$node.log)"; }
}

stop_node() {
    if running "$1"; then as_postgres "$(bindir)/pg_ctl" -D "$(data_of "$1")" -m fast -w stop >/dev/null; fi
}

# Settings of one node, appended to the postgresql.conf it has (later lines win over the primary's copied ones).
node_settings() {
    local node="$1"
    as_postgres tee -a "$(data_of "$node")/postgresql.conf" >/dev/null <<EOF
# node $node (scripts/pg-ha.sh)
port = $(port_of "$node")
unix_socket_directories = '$(socket_of "$node")'
EOF
}

initialise() {
    local bin; bin="$(bindir)"
    id postgres >/dev/null 2>&1 || die "the postgres system user is missing: reinstall Debian's postgresql package"
    [ ${#dir} -le 80 ] || die "the directory $dir is too long for the nodes' Unix sockets (at most 107 octets): set METERTRUST_PG_HA_DIR"
    rm -rf "$dir"
    mkdir -p "$dir/tls" "$dir/log" "$dir/a/socket" "$dir/b/socket" "$dir/a/data" "$dir/b/data"
    chmod 0755 "$dir" "$dir/a" "$dir/b"
    # The clients' copy of the superuser's password: 0600, owned by whoever runs the tests.
    make_password_and_tls "$dir/password" "$dir/tls" "MeterTrust test PostgreSQL HA CA"
    chown postgres: "$dir/a" "$dir/b" "$dir/a/data" "$dir/b/data" "$dir/a/socket" "$dir/b/socket" "$dir/log" "$dir/tls/server.key" "$dir/tls/server.crt"
    chmod 0700 "$dir/a/data" "$dir/b/data"; chmod 0600 "$dir/tls/server.key"
    # The replication role's password lives only in a passfile the postgres user reads (primary_conninfo names the
    # file, not the password); initdb's password file is removed straight after.
    mkdir -m 0700 "$dir/secrets"; chown postgres: "$dir/secrets"
    local replication; replication="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    as_postgres install -m 0600 /dev/null "$dir/secrets/pgpass"
    printf '127.0.0.1:*:replication:replicator:%s\n' "$replication" | as_postgres tee "$dir/secrets/pgpass" >/dev/null
    as_postgres install -m 0600 /dev/null "$dir/secrets/initdb"
    as_postgres tee "$dir/secrets/initdb" >/dev/null < "$dir/password"
    as_postgres "$bin/initdb" -D "$(data_of a)" -U metertrust --pwfile="$dir/secrets/initdb" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$dir/secrets/initdb"
    # Replication connections only over TLS, for the replication role (initdb's default lines also allow them
    # without TLS: the first matching line wins, so these come first).
    local hba; hba="$(data_of a)/pg_hba.conf"
    as_postgres sh -c "{ printf 'hostssl replication replicator 127.0.0.1/32 scram-sha-256\nhost replication all all reject\n'; cat '$hba'; } > '$hba.new' && mv '$hba.new' '$hba'"
    as_postgres tee -a "$(data_of a)/postgresql.conf" >/dev/null <<EOF
# MeterTrust HA pair (scripts/pg-ha.sh): settings both nodes share
listen_addresses = '127.0.0.1'
ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
ssl_min_protocol_version = 'TLSv1.3'
password_encryption = 'scram-sha-256'
max_connections = 300
shared_buffers = 128MB
fsync = on
full_page_writes = on
synchronous_commit = on
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
default_transaction_isolation = 'read committed'
log_min_messages = warning
EOF
    node_settings a
    echo a > "$dir/primary"
    start_node a
    # The password reaches the server inside the statement (hashed there to SCRAM); the statement is not logged.
    sql a <<EOF
SET log_statement = 'none';
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '$replication';
CREATE DATABASE $database;
EOF
    make_standby b a
}

# Makes `node` a streaming standby of `source` (which runs as the primary): a fresh pg_basebackup -R, its own port
# and socket, no synchronous_standby_names of its own, then named as the primary's synchronous standby.
make_standby() {
    local node="$1" source="$2" data; data="$(data_of "$1")"
    as_postgres sh -c "rm -rf '$data' && mkdir -m 0700 '$data'"
    local conninfo="host=127.0.0.1 port=$(port_of "$source") user=replicator passfile=$dir/secrets/pgpass sslmode=verify-full sslrootcert=$dir/tls/ca.crt application_name=$node"
    as_postgres env PGPASSFILE="$dir/secrets/pgpass" "$(bindir)/pg_basebackup" -d "$conninfo" -D "$data" -R -X stream -c fast \
        || die "pg_basebackup from node $source failed"
    # -R wrote standby.signal and primary_conninfo into postgresql.auto.conf. Keep that line only if it names the
    # passfile rather than a password; drop the primary's synchronous_standby_names (that would make this node, once
    # promoted, wait for a standby that is not there).
    as_postgres sh -c "grep -v -e '^synchronous_standby_names' -e '^primary_conninfo' '$data/postgresql.auto.conf' > '$data/auto.new'; \
        printf \"primary_conninfo = '%s'\\n\" '$conninfo' >> '$data/auto.new'; mv '$data/auto.new' '$data/postgresql.auto.conf'; \
        chmod 0600 '$data/postgresql.auto.conf'"
    [ -f "$data/standby.signal" ] || die "pg_basebackup -R did not write standby.signal in $data"
    node_settings "$node"
    start_node "$node"
    sql "$source" -c "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ($node)'" -c "SELECT pg_reload_conf()" >/dev/null
    wait_synchronous "$source" "$node"
}

# Waits until `standby` streams from `primary` and is its synchronous standby.
wait_synchronous() {
    local primary="$1" standby="$2" state="" i
    for i in $(seq 1 300); do
        state="$(sql "$primary" -c "SELECT state || '/' || sync_state FROM pg_stat_replication WHERE application_name = '$standby'" 2>/dev/null || true)"
        [ "$state" = "streaming/sync" ] && return 0
        sleep 0.2
    done
    tail -20 "$dir/log/$standby.log" >&2
    die "node $standby is not a synchronous streaming standby of node $primary after 60 s (state: ${state:-none})"
}

start() {
    [ -f "$(data_of a)/PG_VERSION" ] || { initialise; return 0; }
    local p s; p="$(primary)"; s="$(standby)"
    start_node "$p"
    if [ -f "$(data_of "$s")/standby.signal" ]; then
        start_node "$s"
        wait_synchronous "$p" "$s"
    else
        echo "warning: node $s is no standby (the old primary after a fail-over?): scripts/pg-ha.sh rebuild makes it one" >&2
    fi
}

status() {
    local node role
    for node in a b; do
        if ! running "$node"; then role="stopped"
        elif [ "$(sql "$node" -c 'SELECT pg_is_in_recovery()')" = t ]; then role="standby"
        else role="primary"
        fi
        echo "node $node: $role, 127.0.0.1:$(port_of "$node"), $(data_of "$node")"
    done
    if running "$(primary)"; then
        sql "$(primary)" -c "SELECT 'replication: ' || application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication"
    else
        return 1
    fi
}

# SIGKILL of the postmaster and every child at once: no shutdown checkpoint, no goodbye to the standby.
crash() {
    local node data pid children; node="$(primary)"; data="$(data_of "$node")"
    running "$node" || die "node $node (the primary) is not running"
    pid="$(head -1 "$data/postmaster.pid")"
    children="$(pgrep -P "$pid" || true)"
    # shellcheck disable=SC2086
    kill -KILL "$pid" $children
    local i
    # Gone, or a zombie waiting for whoever adopted it to reap it: either way it serves nothing.
    for i in $(seq 1 100); do
        { kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; } || break
        sleep 0.05
    done
    echo "node $node (the primary, postmaster $pid) killed with SIGKILL" >&2
}

promote() {
    local old new; old="$(primary)"; new="$(standby)"
    [ -f "$(data_of "$new")/standby.signal" ] || die "node $new is not a standby: nothing to promote"
    running "$new" || start_node "$new"
    if running "$old" && [ "${1:-}" != "--force" ]; then
        die "node $old (the primary) still runs: stop or fence it first (two writable primaries lose data), or promote --force"
    fi
    as_postgres "$(bindir)/pg_ctl" -D "$(data_of "$new")" -w -t 60 promote >/dev/null || die "pg_ctl promote of node $new failed"
    local i
    for i in $(seq 1 300); do
        [ "$(sql "$new" -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)" = f ] && break
        sleep 0.2
    done
    [ "$(sql "$new" -c 'SELECT pg_is_in_recovery()')" = f ] || die "node $new is still in recovery after promote"
    # No standby now: commits must not wait for one. Until `rebuild`, a loss of this node loses what it committed since.
    sql "$new" -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
    echo "$new" > "$dir/primary"
    echo "node $new is the primary on 127.0.0.1:$(port_of "$new"); it has no synchronous standby: run scripts/pg-ha.sh rebuild" >&2
}

rebuild() {
    local p s; p="$(primary)"; s="$(standby)"
    running "$p" || die "node $p (the primary) is not running: scripts/pg-ha.sh start"
    if running "$s"; then
        [ "$(sql "$s" -c 'SELECT pg_is_in_recovery()')" = t ] || die "node $s runs as a primary: fence it before it is rebuilt"
        stop_node "$s"
    fi
    make_standby "$s" "$p"
    echo "node $s is the synchronous standby of node $p" >&2
}

stop() { local node; for node in a b; do stop_node "$node"; done; }

case "${1:-}" in
    start) start; echo "PostgreSQL HA pair: primary node $(primary) on 127.0.0.1:$(port_of "$(primary)"), standby node $(standby) on 127.0.0.1:$(port_of "$(standby)") ($dir)" >&2 ;;
    stop) stop ;;
    status) status ;;
    env) export_env ;;
    crash) crash ;;
    promote) shift; promote "${1:-}" ;;
    rebuild) rebuild ;;
    run) shift; run_with_servers scripts/pg-ha.sh "$@" ;;
    destroy) stop; rm -rf "$dir" ;;
    *) echo "usage: scripts/pg-ha.sh start|stop|status|env|crash|promote [--force]|rebuild|run -- CMD|destroy" >&2; exit 2 ;;
esac
