#!/usr/bin/env bash
# libFuzzer runs of every input parser (the targets are in Fuzz/, a package of their own).
#
#   scripts/fuzz.sh [run]   build every target, run each for FUZZ_SECONDS (default 60); non-zero exit on a finding
#   scripts/fuzz.sh build   build the targets only
#   scripts/fuzz.sh seeds   rewrite the seed corpora Fuzz/Corpus/<Target>/ with the real code (needs SoftHSM2), and
#                           Fuzz/Fixtures/ (the seed bundles' trust anchor, which FuzzBundle's meters pin)
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS ("FuzzCSR FuzzApproval"; default all), FUZZ_JOBS (targets
# run at once, default 1), FUZZ_ARGS (more libFuzzer flags, e.g. "-fork=2 -ignore_crashes=1").
# Each target fuzzes a working copy of its seeds in .fuzz-corpus/<Target>/ (kept between runs, git-ignored); crashes,
# timeouts (10 s an input) and out-of-memory inputs (2 GiB) go to .fuzz-artifacts/<Target>/ with the run's log.
# Leak detection is off (-detect_leaks=0): LeakSanitizer reports Swift globals whose storage it cannot trace (a
# `static let` Data) as leaks; ASAN_OPTIONS=detect_leaks=1 FUZZ_ARGS=-detect_leaks=1 turn it back on.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

all_targets=(FuzzCSR FuzzCSRList FuzzBatchManifest FuzzBundle FuzzAdminRequest FuzzApproval FuzzBackupFile FuzzAuditEntry FuzzCheckpoint FuzzEnrollmentList FuzzCertsOnlyCMS FuzzPSKImport FuzzCsrAttrs FuzzESTResponse FuzzOCSPRequest FuzzOCSPAnswer)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
read -r -a extra <<<"${FUZZ_ARGS:-}"
swift=${SWIFT:-swift}
flags=(-c debug --package-path Fuzz --scratch-path "$root/.build-fuzz" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)

for target in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $target "* ]] || { echo "fuzz: unknown target $target (targets: ${all_targets[*]})" >&2; exit 2; }
done

build() {
    local start=$SECONDS
    # One product at a time: MakeSeeds, in the same package, has a main of its own and is not built with the fuzzer.
    for target in "${targets[@]}"; do
        echo "fuzz: building $target"
        # (The linker's "Cannot export local symbol '__asan_...'" warnings are harmless and many: not shown.)
        "$swift" build "${flags[@]}" --product "$target" 2>&1 | { grep -v "Cannot export local symbol" || true; }
        [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "fuzz: building $target failed" >&2; exit 1; }
    done
    echo "fuzz: built ${#targets[@]} target(s) in $((SECONDS - start)) s"
}

seeds() {
    "$swift" build -c debug --package-path Fuzz --scratch-path "$root/.build-fuzz-seeds" --product MakeSeeds
    local bin
    bin=$("$swift" build -c debug --package-path Fuzz --scratch-path "$root/.build-fuzz-seeds" --show-bin-path)
    rm -rf Fuzz/Corpus Fuzz/Fixtures
    "$bin/MakeSeeds" Fuzz
}

# Runs one target; prints its summary line to $2.
run_one() {
    local target=$1 summary=$2 bin=$3
    local corpus=.fuzz-corpus/$target artifacts=.fuzz-artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    cp Fuzz/Corpus/"$target"/* "$corpus"/
    local marker=$artifacts/.started
    touch "$marker"
    local status=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} "$bin/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -detect_leaks=0 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${extra[@]}" "$corpus" >"$artifacts/fuzz.log" 2>&1 || status=$?
    local executions
    executions=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$artifacts/fuzz.log" | awk '{ sum += $2 } END { print sum + 0 }')
    if [[ $executions == 0 ]]; then
        executions=$(grep -oE '^#[0-9]+' "$artifacts/fuzz.log" | tail -1 | tr -d '#')
    fi
    local found
    found=$(find "$artifacts" -type f ! -name '*.log' ! -name .started -newer "$marker" | sort)
    if [[ $status -ne 0 || -n $found ]]; then
        printf '%-18s %12s executions  FOUND A CRASH (exit %s): %s\n' "$target" "${executions:-?}" "$status" \
            "$(echo "$found" | tr '\n' ' ')see $artifacts/fuzz.log" >"$summary"
        grep -m1 -E 'Fatal error|ERROR: AddressSanitizer|ERROR: LeakSanitizer|ERROR: libFuzzer|SUMMARY' "$artifacts/fuzz.log" >>"$summary" || true
        return 1
    fi
    printf '%-18s %12s executions  no crash in %s s\n' "$target" "${executions:-?}" "$seconds" >"$summary"
}

run() {
    build
    local bin
    bin=$("$swift" build "${flags[@]}" --show-bin-path)
    local summaries
    summaries=$(mktemp -d)
    echo "fuzz: running ${#targets[@]} target(s), $seconds s each, $jobs at a time"
    local running=0 failed=0
    for target in "${targets[@]}"; do
        run_one "$target" "$summaries/$target" "$bin" &
        running=$((running + 1))
        if ((running >= jobs)); then
            wait -n || failed=1
            running=$((running - 1))
        fi
    done
    while ((running > 0)); do
        wait -n || failed=1
        running=$((running - 1))
    done
    echo "fuzz: results"
    for target in "${targets[@]}"; do cat "$summaries/$target"; done
    rm -rf "$summaries"
    if ((failed)); then
        echo "fuzz: FAILED: a target found a crash; reproduce with $bin/<Target> <crash file>" >&2
        exit 1
    fi
}

case "${1:-run}" in
    run) run ;;
    build) build ;;
    seeds) seeds ;;
    *) echo "usage: scripts/fuzz.sh [run|build|seeds]" >&2; exit 2 ;;
esac
