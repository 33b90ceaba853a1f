#!/usr/bin/env bash
# Fuzzes the pure protocol layers with libFuzzer and AddressSanitizer, each for N seconds
# (default 60):
#
#   bash scripts/fuzz-wire.sh [seconds] [wire|http|all]      (default: all)
#
# wire: FTVMWire (classification, parsing, in-place rewriting, frame building). The entry point is
#       Tests/Fuzz/WireFuzz.swift, compiled with Sources/FTVMWire/*.swift; seeds are the golden
#       frames in Tests/Fuzz/seeds/.
# http: FTVMHTTP (HTTP/1.x framing, exchange boundaries, Date masking, split invariance). The
#       entry point is Tests/Fuzz/HTTPFuzz.swift, compiled with Sources/FTVMHTTP/*.swift and the shared
#       end-of-run checks Tests/FTVMHTTPTests/TrackerInvariants.swift; seeds
#       are the conversations in Tests/Fuzz/http-seeds/ (layout described in HTTPFuzz.swift), with
#       the libFuzzer dictionary http.dict beside them.
#
# Each becomes one optimized binary under .build-fuzz/ (override with FTVM_FUZZ_DIR): wire-fuzz and
# http-fuzz. Corpora grow in .build-fuzz/corpus (wire) and .build-fuzz/http-corpus across runs. A
# failing input is saved as .build-fuzz/crash-* (wire) or .build-fuzz/http-crash-* (http); replay
# it with `.build-fuzz/wire-fuzz FILE` or `.build-fuzz/http-fuzz FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
which="${2:-all}"
out="${FTVM_FUZZ_DIR:-.build-fuzz}"
case "$which" in
    wire | http | all) ;;
    *)
        echo "usage: $0 [seconds] [wire|http|all]" >&2
        exit 2
        ;;
esac

# Swift's own crash backtracer reads the stack in ways ASan reports as errors; libFuzzer prints
# what is needed and saves the input.
export SWIFT_BACKTRACE=enable=no

# fuzz NAME MODULE CORPUS ARTIFACT_PREFIX MAX_LEN SEEDS SOURCES...: builds NAME-fuzz from the sources
# and runs it on its corpus (with SEEDS/NAME.dict as dictionary when there is one).
fuzz() {
    local name="$1" module="$2" corpus="$3" prefix="$4" max_len="$5" seeds="$6"
    shift 6
    local dict=()
    if [[ -f "$seeds/$name.dict" ]]; then dict=(-dict="$seeds/$name.dict"); fi
    mkdir -p "$corpus"
    cp -n "$seeds"/*.bin "$corpus/"
    # -O as the relay runs: a debug build once hid a miscompile that only -O showed.
    # (Checked here: called as `fuzz … || status=$?`, set -e does not stop at a failed build, and
    # the binary of an earlier one would run instead.)
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
        -module-name "$module" "$@" \
        -o "$out/$name-fuzz" 2> >(grep -v 'ld.gold: warning: Cannot export local symbol' >&2) || {
        local built=$?
        echo "fuzz-wire: $name exit $built; the build failed"
        return "$built"
    }
    set +e
    "$out/$name-fuzz" \
        -max_total_time="$seconds" \
        -max_len="$max_len" \
        -timeout=5 \
        -print_final_stats=1 \
        -artifact_prefix="$prefix" \
        "${dict[@]}" \
        "$corpus" 2>&1 | tee "$out/$name-last-run.log" \
        | grep --line-buffered -E '^#[0-9]+[[:space:]]+(INITED|pulse|DONE)|^(==|SUMMARY|stat::)|Fatal error|artifact'
    local status="${PIPESTATUS[0]}"
    set -e
    echo "fuzz-wire: $name exit $status; full log in $out/$name-last-run.log"
    return "$status"
}

mkdir -p "$out"
status=0
if [[ "$which" == wire || "$which" == all ]]; then
    fuzz wire WireFuzz "$out/corpus" "$out/" 1600 Tests/Fuzz/seeds \
        Sources/FTVMWire/*.swift Tests/Fuzz/WireFuzz.swift || status=$?
    # The log name the wire fuzzer always had.
    cp "$out/wire-last-run.log" "$out/last-run.log"
fi
if [[ "$which" == http || "$which" == all ]]; then
    fuzz http HTTPFuzz "$out/http-corpus" "$out/http-" 4096 Tests/Fuzz/http-seeds \
        Sources/FTVMHTTP/*.swift Tests/FTVMHTTPTests/TrackerInvariants.swift Tests/Fuzz/HTTPFuzz.swift || status=$?
fi
exit "$status"
