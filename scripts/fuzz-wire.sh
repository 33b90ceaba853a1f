#!/usr/bin/env bash
# Fuzzes FTVMWire (classification, parsing, in-place rewriting, frame building) with libFuzzer and
# AddressSanitizer for N seconds (default 60).
#
#   bash scripts/fuzz-wire.sh [seconds]
#
# The entry point is Tests/Fuzz/WireFuzz.swift, compiled with Sources/FTVMWire/*.swift into one
# optimized binary under .build-fuzz/ (override with FTVM_FUZZ_DIR). The corpus starts from the
# golden frames in Tests/Fuzz/seeds/ and grows in .build-fuzz/corpus across runs. A failing input
# is saved as .build-fuzz/crash-*; replay it with `.build-fuzz/wire-fuzz FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
out="${FTVM_FUZZ_DIR:-.build-fuzz}"
mkdir -p "$out/corpus"
cp -n Tests/Fuzz/seeds/*.bin "$out/corpus/"

# -O as the relay runs: a debug build once hid a miscompile that only -O showed.
swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
    -module-name WireFuzz \
    Sources/FTVMWire/*.swift Tests/Fuzz/WireFuzz.swift \
    -o "$out/wire-fuzz" 2> >(grep -v 'ld.gold: warning: Cannot export local symbol' >&2)

# Swift's own crash backtracer reads the stack in ways ASan reports as errors; libFuzzer prints
# what is needed and saves the input.
export SWIFT_BACKTRACE=enable=no
set +e
"$out/wire-fuzz" \
    -max_total_time="$seconds" \
    -max_len=1600 \
    -timeout=5 \
    -print_final_stats=1 \
    -artifact_prefix="$out/" \
    "$out/corpus" 2>&1 | tee "$out/last-run.log" \
    | grep --line-buffered -E '^#[0-9]+[[:space:]]+(INITED|pulse|DONE)|^(==|SUMMARY|stat::)|Fatal error|artifact'
status="${PIPESTATUS[0]}"
set -e
echo "fuzz-wire: exit $status; full log in $out/last-run.log"
exit "$status"
