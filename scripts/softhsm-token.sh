#!/usr/bin/env bash
# Creates a fresh project-local SoftHSM2 token: scripts/softhsm-token.sh DIR LABEL
# Writes DIR/softhsm2.conf (token store DIR/tokens), DIR/pin and DIR/so-pin (mode 0600, random user and SO PINs), deletes any token
# LABEL there, and initialises a new one with `metertrust hsm init-token` (PINs passed through the environment,
# never argv).
# Runs from any directory: DIR is taken relative to the caller's directory, the binary (METERTRUST_BIN, default
# .build/debug/metertrust) relative to the caller's directory if it is there, else to the repository root found from
# this script's own path. `metertrust setup --dev-token DIR` does the same inside the binary.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: scripts/softhsm-token.sh DIR LABEL" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$(mkdir -p "$1" && cd "$1" && pwd)
label=$2
bin=${METERTRUST_BIN:-.build/debug/metertrust}
if [[ $bin != /* && ! -x $bin ]]; then bin=$root/$bin; fi
if [ ! -x "$bin" ]; then
    echo "softhsm-token.sh: no metertrust binary at $bin: run swift build in $root (or set METERTRUST_BIN)" >&2
    exit 1
fi

mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
cat > "$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
umask 077
[ -s "$dir/pin" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/pin"
[ -s "$dir/so-pin" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/so-pin"
chmod 600 "$dir/pin" "$dir/so-pin"

export SOFTHSM2_CONF="$dir/softhsm2.conf"
softhsm2-util --delete-token --token "$label" >/dev/null 2>&1 || true
METERTRUST_HSM_PIN=$(cat "$dir/pin") METERTRUST_HSM_SO_PIN=$(cat "$dir/so-pin") \
    "$bin" hsm init-token --label "$label" >&2
