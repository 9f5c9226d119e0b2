#!/usr/bin/env bash
# Fuzzing the gateway's parsers with libFuzzer (the toolchain's own, with AddressSanitizer).
#
#   deploy/fuzz.sh build [TARGET...]          build the targets into .build-fuzz
#   deploy/fuzz.sh replay [TARGET...]         run the committed corpus and every past crash input once
#   deploy/fuzz.sh run SECONDS [TARGET...]    fuzz each target for SECONDS (new finds in .build-fuzz)
#   deploy/fuzz.sh ci SECONDS                 build, replay, then run each target for SECONDS
#
# Targets live in Tests/Fuzz/<target>, seed corpora in Tests/Fuzz/corpus/<target>, dictionaries in
# Tests/Fuzz/dict/<target>.dict, and inputs that once crashed in Tests/Fuzz/crashes/<target>
# (replayed on every run, so a fixed finding stays fixed). A crash leaves its input in
# .build-fuzz/artifacts/<target>/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
# AddressSanitizer and libFuzzer report a failure themselves; Swift's backtracer, attaching to
# the failed process on top of them, was seen to hang a CI run for minutes.
export SWIFT_BACKTRACE=enable=no

all_targets=(FuzzRequestHead FuzzTarget FuzzResponseHead FuzzToken FuzzTOML FuzzJournal FuzzHTTP2Head FuzzJWKS FuzzRESP)
scratch=.build-fuzz
runtime="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")/lib/swift/clang/lib/linux/libclang_rt.fuzzer_no_main-$(uname -m).a"

build() {
    [[ -f $runtime ]] || { echo "fuzz: libFuzzer runtime not found at $runtime" >&2; exit 1; }
    for t in "$@"; do
        swift build --scratch-path "$scratch" --product "$t" \
            -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
            -Xswiftc -DFUZZING -Xlinker "$runtime" -Xlinker -lstdc++ 2>&1 | grep -E "error|Compiling|Build of" | grep -v "Cannot export" || true
        [[ -x $scratch/debug/$t ]] || { echo "fuzz: $t did not build" >&2; exit 1; }
    done
}

options() {
    local t=$1
    local dict=Tests/Fuzz/dict/$t.dict
    mkdir -p "$scratch/artifacts/$t"
    echo "-artifact_prefix=$scratch/artifacts/$t/ -max_len=8192 -rss_limit_mb=4096"
    if [[ -f $dict ]]; then echo "-dict=$dict"; fi
}

replay() {
    for t in "$@"; do
        local dirs=()
        for d in Tests/Fuzz/corpus/$t Tests/Fuzz/crashes/$t; do [[ -d $d ]] && dirs+=("$d"); done
        # shellcheck disable=SC2046
        "$scratch/debug/$t" $(options "$t") -runs=0 "${dirs[@]}" 2>&1 | grep -E "^(INFO: seed corpus|Done|==|SUMMARY)|Fatal|precondition" || true
        "$scratch/debug/$t" $(options "$t") -runs=0 "${dirs[@]}" >/dev/null 2>&1 || { echo "fuzz: $t failed on a committed input" >&2; exit 1; }
        echo "fuzz: $t replayed its corpus and past crashes"
    done
}

run() {
    local seconds=$1; shift
    for t in "$@"; do
        mkdir -p "$scratch/corpus/$t"
        local log=$scratch/$t.log
        # shellcheck disable=SC2046
        if ! "$scratch/debug/$t" $(options "$t") -max_total_time="$seconds" -print_final_stats=1 \
            "$scratch/corpus/$t" Tests/Fuzz/corpus/$t >"$log" 2>&1; then
            tail -40 "$log" >&2
            echo "fuzz: $t found a failing input (in $scratch/artifacts/$t/)" >&2
            exit 1
        fi
        echo "fuzz: $t ran ${seconds}s, $(grep -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*') inputs, no finding"
    done
}

verb=${1:-}
shift || true
case $verb in
    build) build "${@:-${all_targets[@]}}" ;;
    replay) replay "${@:-${all_targets[@]}}" ;;
    run) seconds=$1; shift; run "$seconds" "${@:-${all_targets[@]}}" ;;
    ci) seconds=${1:-60}; build "${all_targets[@]}"; replay "${all_targets[@]}"; run "$seconds" "${all_targets[@]}" ;;
    *) sed -n 2,12p "$0"; exit 2 ;;
esac
