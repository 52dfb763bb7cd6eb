#!/usr/bin/env bash
# `make demo`: a fresh project-local SoftHSM2 token, then `metertrust demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug/metertrust
scripts/softhsm-token.sh .softhsm metertrust-demo
export SOFTHSM2_CONF="$PWD/.softhsm/softhsm2.conf"
METERTRUST_HSM_PIN=$(cat .softhsm/pin)
export METERTRUST_HSM_PIN
exec "$bin" demo --reset --token-label metertrust-demo "$@"
