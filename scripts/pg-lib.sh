# Shared by scripts/pg-cluster.sh and scripts/pg-ha.sh (sourced, not run): finding Debian's PostgreSQL server, running
# as the postgres system user, choosing a directory that user can reach, and starting servers without inherited
# descriptors.

die() { echo "error: $*" >&2; exit 1; }

bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    die "PostgreSQL's server is not installed: run scripts/install-deps.sh (Debian package postgresql)"
}

# Runs a command as the postgres system user (PostgreSQL refuses to run as root).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"
    elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"
    else sudo -n -u postgres -- "$@"
    fi
}

# The directory for a cluster: $1 if set, else PROJECT/$2 if the postgres user can reach the project, else a directory
# under /tmp named after the project's path ($3 its prefix).
reachable_dir() {
    local chosen="$1" name="$2" prefix="$3"
    if [ -n "$chosen" ]; then echo "$chosen"; return; fi
    if id postgres >/dev/null 2>&1 && as_postgres test -x "$project" 2>/dev/null; then
        echo "$project/$name"
    else
        echo "/tmp/$prefix-$(printf '%s' "$project" | sha256sum | cut -c1-12)"
    fi
}

# Runs a command with every descriptor above 2 closed: a server started from a test must not hold the test's pipes
# (Foundation's Process on Linux waits for every holder of a pipe it made before it reports the child finished).
without_inherited_fds() {
    (
        local fd
        for fd in /proc/$BASHPID/fd/*; do
            fd="${fd##*/}"
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
        done
        "$@"
    )
}

# `SCRIPT run -- CMD...`: start, run CMD with the script's environment (its export_env), stop, exit with CMD's status.
# $1 is the script's name for the usage line; the caller defines start, stop and export_env.
run_with_servers() {
    local name="$1"; shift
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: $name run -- COMMAND..."
    start
    eval "$(export_env)"
    local status=0
    "$@" || status=$?
    stop
    exit $status
}

# A random password in $1 (0600, owned by whoever runs the script) and, in $2, a throw-away CA (ca.crt) and a server
# certificate for 127.0.0.1 and localhost (server.crt, server.key) whose key the postgres user owns; $3 names the CA.
make_password_and_tls() {
    local password="$1" tls="$2" name="$3"
    ( umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$password" )
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=$name" \
        -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$tls/ext.cnf"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 3650 \
        -extfile "$tls/ext.cnf" -out "$tls/server.crt" 2>/dev/null
    rm -f "$tls/ca.key" "$tls/server.csr" "$tls/ext.cnf" "$tls/ca.srl"
    chmod 0644 "$tls/ca.crt" "$tls/server.crt"
    chown postgres: "$tls/server.key" "$tls/server.crt"
    chmod 0600 "$tls/server.key"
}
