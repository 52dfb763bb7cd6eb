#!/usr/bin/env bash
# `metertrust bench est` at each meter count given (default 10000 and 100000), concurrency C (default 32), on a fresh
# SoftHSM2 token of its own: N simulated meters enroll once each over EST (a full TLS 1.3 handshake + simpleenroll)
# against nginx, the reference measured in the same run, and against our EST server. One JSON report per count in
# OUT (default bench-est/). Usage: scripts/bench-est.sh [C] [N ...] (after swift build -c release; part of make bench).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
concurrency=${1:-32}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 100000)
bin=${METERTRUST_BIN:-$root/.build/release/metertrust}
out=${OUT:-$root/bench-est}
mkdir -p "$out"
s=$(mktemp -d /tmp/metertrust-bench-est.XXXXXX)
trap 'rm -rf "$s"' EXIT
METERTRUST_BIN=$bin "$root/scripts/softhsm-token.sh" "$s/hsm" bench-est >/dev/null
export SOFTHSM2_CONF=$s/hsm/softhsm2.conf METERTRUST_HSM_PIN=$(cat "$s/hsm/pin")
for n in "${counts[@]}"; do
    echo "bench est: $n meters, concurrency $concurrency" >&2
    "$bin" bench est --meters "$n" --concurrency "$concurrency" --token-label bench-est --work-dir "$s" --json > "$out/est-$n-c$concurrency.json"
    python3 - "$out/est-$n-c$concurrency.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for run in [r["nginx"], r.get("est"), r.get("psk")]:
    if run:
        print(f'{run["target"]:>14}: {run["enrollmentsPerSecond"]:8.0f}/s  p50 {run["p50Milliseconds"]:6.1f} ms  p99 {run["p99Milliseconds"]:6.1f} ms  '
              f'server peak {run["serverPeakMemoryMB"]:6.1f} MB  ({run["succeeded"]} ok, {run["failed"]} failed)')
if r.get("ratio") is not None:
    print(f'  ratio to nginx: {r["ratio"]:.2f}')
PY
done
