#!/usr/bin/env bash
# The issuance benchmark against PostgreSQL (issue 13): the project-local cluster (scripts/pg-cluster.sh: fsync and
# synchronous_commit on), a fresh database per run, a fresh bench token; then PROCESSES bench processes on one
# database at once (default 1; 2 for the two-node figure), each with its own manufacturer CA under one bench root.
#   scripts/bench-postgres.sh COUNT [PROCESSES]
# Prints each process's JSON report (one per line). Runs from any directory; needs the release build.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
count=${1:-1000000}
processes=${2:-1}
bin=$root/.build/release/metertrust
[ -x "$bin" ] || { echo "error: no release build at $bin: run swift build -c release" >&2; exit 1; }
"$root/scripts/pg-cluster.sh" start
eval "$("$root/scripts/pg-cluster.sh" env)"
export PGPASSWORD; PGPASSWORD=$(cat "$METERTRUST_TEST_POSTGRES_PASSWORD_FILE")
database="bench_$(date +%s)_$$"
psql -X -q -h "$METERTRUST_TEST_POSTGRES_SOCKET" -p "$METERTRUST_TEST_POSTGRES_PORT" -U metertrust -d postgres -c "CREATE DATABASE $database"
trap 'psql -X -q -h "$METERTRUST_TEST_POSTGRES_SOCKET" -p "$METERTRUST_TEST_POSTGRES_PORT" -U metertrust -d postgres -c "DROP DATABASE IF EXISTS $database" || true' EXIT
METERTRUST_BIN=$bin "$root/scripts/softhsm-token.sh" "$root/.softhsm" metertrust-bench >/dev/null
export SOFTHSM2_CONF=$root/.softhsm/softhsm2.conf
export METERTRUST_HSM_PIN; METERTRUST_HSM_PIN=$(cat "$root/.softhsm/pin")
url="postgres://metertrust@127.0.0.1:$METERTRUST_TEST_POSTGRES_PORT/$database?sslrootcert=$METERTRUST_TEST_POSTGRES_CA_FILE"
threads=$(( $(nproc) / processes )); [ "$threads" -ge 1 ] || threads=1
psql -X -At -h "$METERTRUST_TEST_POSTGRES_SOCKET" -p "$METERTRUST_TEST_POSTGRES_PORT" -U metertrust -d postgres \
    -c "SELECT 'postgres settings: ' || string_agg(name || '=' || setting, ' ') FROM pg_settings WHERE name IN ('fsync','synchronous_commit','shared_buffers','wal_level','max_wal_size','full_page_writes')" >&2
pids=()
for i in $(seq 1 "$processes"); do
    "$bin" bench issuance --count "$count" --threads "$threads" --token-label metertrust-bench \
        --store "$url" --store-password-file "$METERTRUST_TEST_POSTGRES_PASSWORD_FILE" --json > "/tmp/bench-postgres-$$-$i.json" &
    pids+=($!)
    sleep 5  # the first run makes the bench root; the others use it
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for i in $(seq 1 "$processes"); do cat "/tmp/bench-postgres-$$-$i.json"; echo; rm -f "/tmp/bench-postgres-$$-$i.json"; done
# What the store takes: each table (its partitions summed) and each index, in bytes, and per certificate.
psql -X -At -F ' ' -h "$METERTRUST_TEST_POSTGRES_SOCKET" -p "$METERTRUST_TEST_POSTGRES_PORT" -U metertrust -d "$database" >&2 <<'SQL'
VACUUM ANALYZE;
SELECT 'stored: ' || count(*) || ' certificates, database ' || pg_size_pretty(pg_database_size(current_database())) FROM certificates;
WITH n AS (SELECT count(*)::numeric AS n FROM certificates),
rel AS (
    SELECT coalesce(parent.relname, c.relname) AS name, c.relkind AS kind,
           pg_relation_size(c.oid) + coalesce(pg_relation_size(c.reltoastrelid), 0) AS bytes
    FROM pg_class c
    LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
    LEFT JOIN pg_class parent ON parent.oid = i.inhparent
    JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
    WHERE c.relkind IN ('r', 'i')
)
SELECT 'size ' || (CASE kind WHEN 'r' THEN 'table ' ELSE 'index ' END) || name || ' ' || sum(bytes) || ' bytes, ' || round(sum(bytes) / greatest(n.n, 1), 1) || ' per certificate'
FROM rel, n GROUP BY name, kind, n.n HAVING sum(bytes) > 100000 ORDER BY sum(bytes) DESC;
SQL
exit $status
