#!/usr/bin/env bash
# A batch of COUNT meters (default 1,000,000) through the factory, then its signed enrollment manifest uploaded to a
# utility account in one call over HTTPS with the CLI (`enroll upload`, progress bar), against `serve --roles
# admin,account`; the account created under quorum by three custodians. Prints the factory's rate and the upload's
# time. Usage: scripts/bench-enroll-http.sh [COUNT] (after swift build -c release; part of make bench).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
count=${1:-1000000}
bin=${METERTRUST_BIN:-$root/.build/release/metertrust}
python=$root/.venv/bin/python
s=$(mktemp -d /tmp/metertrust-bench-enroll.XXXXXX)
trap 'rm -rf "$s"' EXIT
mkdir -p $s/people $s/batch
METERTRUST_BIN=$bin "$root/scripts/softhsm-token.sh" $s/hsm scale >/dev/null
export SOFTHSM2_CONF=$s/hsm/softhsm2.conf METERTRUST_HSM_PIN=$(cat $s/hsm/pin)
m() { $bin "$@" --data-dir $s/data; }
$bin init --data-dir $s/data --token-label scale --json >/dev/null
serial=$(m ca create-root --name root --organization Scale --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["certificate"]["serial"])')
m cert show $serial --pem > $s/people/root.pem
for a in "create-admin --name admin" "create-service --name services" "create-operator --name operators" "create-manufacturer --name acme" "create-operational --name north"; do m ca $a --json >/dev/null; done
for n in alice bob carol; do $bin admin keygen --name $n --out $s/people >/dev/null; m admin certify --csr $s/people/$n.csr --name $n --role security-officer --out $s/people/$n.pem >/dev/null; done
m audit init --json >/dev/null
m admin bootstrap --custodian $s/people/alice.pem --custodian $s/people/bob.pem --custodian $s/people/carol.pem >/dev/null
m server-cert --role admin --host localhost >/dev/null
m server-cert --role account --host localhost >/dev/null
# The meters' CSRs, made in two processes (one per half).
half=$(( count / 2 ))
"$python" "$root/scripts/make-device-csrs.py" $half 0024befffe000000 $s/batch/a.txt &
"$python" "$root/scripts/make-device-csrs.py" $(( count - half )) "$(printf '0024befffe%06x' $half)" $s/batch/b.txt
wait
cat $s/batch/a.txt $s/batch/b.txt > $s/batch/csrs.txt
cat > $s/batch/batch.json <<JSON
{"format":"metertrust-batch","version":1,"batch":"scale-1m","manufacturer":"acme","firmware":{"sha256":"$(printf 'ab%.0s' $(seq 32))"},"bootstrapServerURI":"coaps+tcp://bootstrap.example.net","meters":{"start":"0024befffe000000","count":$count},"csrs":"csrs.txt"}
JSON
/usr/bin/time -f "factory: %e s, peak %M KB" $bin factory run --manifest $s/batch/batch.json --out $s/batch/out --quiet --json --data-dir $s/data > $s/factory.json
python3 -c "import json; d=json.load(open('$s/factory.json')); print('factory', d.get('counts'), d.get('certificatesPerSecond'))"
ls -la $s/batch/out/enrollment-manifest.json
$bin serve --roles admin,account --listen admin=127.0.0.1:0 --listen account=127.0.0.1:0 --operations-listen 127.0.0.1:0 --ports-file $s/ports.json --data-dir $s/data 2>$s/serve.err &
spid=$!
for i in $(seq 100); do [ -s $s/ports.json ] && break; sleep 0.2; done
admin=$(python3 -c "import json; print(json.load(open('$s/ports.json'))['admin'])"); account=$(python3 -c "import json; print(json.load(open('$s/ports.json'))['account'])")
as() { n=$1; shift; METERTRUST_ADMIN_URL=https://localhost:$admin METERTRUST_ADMIN_CERT=$s/people/$n.pem METERTRUST_ADMIN_KEY=$s/people/$n.key METERTRUST_ADMIN_TRUST=$s/people/root.pem METERTRUST_WITNESS_DIR=$s/people/$n.w $bin "$@"; }
$bin account keygen --name olive --out $s/people >/dev/null
id=$(as alice account create north --operational-ca north --manufacturer acme --operator olive --operator-csr $s/people/olive.csr --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
as bob admin approve $id >/dev/null; as carol admin approve $id >/dev/null
as bob admin execute $id --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["outcome"]["operatorCertificate"], end="")' > $s/people/olive.pem
export METERTRUST_ACCOUNT_URL=https://localhost:$account METERTRUST_OPERATOR_CERT=$s/people/olive.pem METERTRUST_OPERATOR_KEY=$s/people/olive.key METERTRUST_ACCOUNT_TRUST=$s/people/root.pem
/usr/bin/time -f "upload: %e s, client peak %M KB" $bin enroll upload $s/batch/out/enrollment-manifest.json --manufacturer acme
ps -o rss= -p $spid | awk '{print "serve RSS now: " $1/1024 " MB"}'
$bin enroll list --limit 3
kill -TERM $spid; wait $spid || true
