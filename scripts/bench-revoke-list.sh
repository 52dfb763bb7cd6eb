#!/usr/bin/env bash
# `metertrust revoke --list` end to end at scale (issue 16): a factory batch of COUNT meters (default 1,000,000), the
# list of their identity certificates taken from `cert list --jsonl`, all revoked in one `revoke --list` run (streamed,
# chunks of 1,000, one audit entry each), then `audit verify`, and `serve --roles crl` asked for the CA's full CRL and
# one shard's. Prints the wall time and peak memory of each step and the CRLs' entry counts (openssl crl).
# Usage: scripts/bench-revoke-list.sh [COUNT] (after swift build -c release).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
count=${1:-1000000}
bin=${METERTRUST_BIN:-$root/.build/release/metertrust}
python=$root/.venv/bin/python
s=$(mktemp -d /tmp/metertrust-bench-revoke.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill -TERM $spid 2>/dev/null; rm -rf "$s"' EXIT
mkdir -p $s/batch
METERTRUST_BIN=$bin "$root/scripts/softhsm-token.sh" $s/hsm revoke-scale >/dev/null
export SOFTHSM2_CONF=$s/hsm/softhsm2.conf METERTRUST_HSM_PIN=$(cat $s/hsm/pin)
m() { $bin "$@" --data-dir $s/data; }
timed() { label=$1; shift; /usr/bin/time -f "$label: %e s wall, %U s user, %S s sys, peak %M KB" "$@"; }
$bin init --data-dir $s/data --token-label revoke-scale --json >/dev/null
m ca create-root --name root --organization Scale --json >/dev/null
m ca create-manufacturer --name acme --json >/dev/null
m audit init --json >/dev/null
half=$(( count / 2 ))
"$python" "$root/scripts/make-device-csrs.py" $half 0024befffe000000 $s/batch/a.txt &
"$python" "$root/scripts/make-device-csrs.py" $(( count - half )) "$(printf '0024befffe%06x' $half)" $s/batch/b.txt
wait
cat $s/batch/a.txt $s/batch/b.txt > $s/batch/csrs.txt && rm $s/batch/a.txt $s/batch/b.txt
cat > $s/batch/batch.json <<JSON
{"format":"metertrust-batch","version":1,"batch":"revoke-scale","manufacturer":"acme","firmware":{"sha256":"$(printf 'ab%.0s' $(seq 32))"},"bootstrapServerURI":"coaps+tcp://bootstrap.example.net","meters":{"start":"0024befffe000000","count":$count},"csrs":"csrs.txt"}
JSON
timed factory $bin factory run --manifest $s/batch/batch.json --out $s/batch/out --quiet --json --data-dir $s/data > $s/factory.json
rm -rf $s/batch/out $s/batch/csrs.txt
timed "cert list --jsonl" $bin cert list --ca acme --profile device-identity --jsonl --data-dir $s/data > $s/certs.jsonl
python3 -c "
import json
with open('$s/certs.jsonl') as f, open('$s/revoke.txt', 'w') as out:
    out.write('# every meter of batch revoke-scale\n')
    for line in f: out.write('acme/%s\n' % json.loads(line)['serial'])
"
echo "targets: $(grep -vc '^#' $s/revoke.txt)"
timed "revoke --list" $bin revoke --list $s/revoke.txt --reason cessationOfOperation --json --data-dir $s/data > $s/revoked.json
python3 -c "import json; d=json.load(open('$s/revoked.json')); print('revoked', d['revoked'], 'already', d['alreadyRevoked'])"
timed "revoke --list again (all already revoked)" $bin revoke --list $s/revoke.txt --json --data-dir $s/data > $s/again.json
python3 -c "import json; d=json.load(open('$s/again.json')); print('revoked', d['revoked'], 'already', d['alreadyRevoked'])"
timed "audit verify" $bin audit verify --json --data-dir $s/data > /dev/null
$bin serve --roles crl --listen crl=127.0.0.1:0 --operations-listen 127.0.0.1:0 --ports-file $s/ports.json --data-dir $s/data 2>$s/serve.err &
spid=$!
for i in $(seq 600); do [ -s $s/ports.json ] && break; sleep 0.5; done
port=$(python3 -c "import json; print(json.load(open('$s/ports.json'))['crl'])")
for path in acme.crl acme/0.crl; do
    for i in $(seq 600); do
        code=$(curl -s -o $s/crl.der -w '%{http_code}' http://127.0.0.1:$port/$path) || code=000
        [ "$code" = 200 ] && break; sleep 0.5
    done
    entries=$(openssl crl -inform DER -in $s/crl.der -noout -text | grep -c 'Serial Number:' || true)
    echo "$path: HTTP $code, $(stat -c %s $s/crl.der) octets, $entries entries"
done
echo "serve peak RSS: $(grep VmHWM /proc/$spid/status | awk '{print $2, $3}')"
kill -TERM $spid; wait $spid || true; spid=
