#!/usr/bin/env bash
# Installs the system packages MeterTrust needs, with apt-get, if any is missing. Idempotent.
set -euo pipefail

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
[ -f /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || need+=(libp11-kit-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# PostgreSQL: the server for the PostgreSQL store's tests (scripts/pg-cluster.sh runs a project-local cluster) and psql.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# nginx: the independent TLS peer of the EST client's tests and the reference of `bench est` (mutual TLS, static answer).
[ -x /usr/sbin/nginx ] || need+=(nginx)
# wrk: the HTTP load generator of `bench ocsp` (ours and `openssl ocsp` under the same load).
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need+=(python3-venv); fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "installing: ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
