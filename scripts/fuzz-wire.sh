#!/usr/bin/env bash
# Fuzzes FTVMWire (parsing, classification, in-place rewriting, frame building) with libFuzzer and
# AddressSanitizer for N seconds (default 60).
#
#   bash scripts/fuzz-wire.sh [seconds]
#
# The entry point is Tests/Fuzz/WireFuzz.swift, compiled together with Sources/FTVMWire/*.swift
# into one binary under .build-fuzz/ (override with FTVM_FUZZ_DIR). The corpus starts from the
# golden frames in Tests/Fuzz/seeds/ and grows in .build-fuzz/corpus across runs; a crashing input
# is written to .build-fuzz/crash-* — replay it with `.build-fuzz/wire-fuzz FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
out="${FTVM_FUZZ_DIR:-.build-fuzz}"
mkdir -p "$out/corpus"
cp -n Tests/Fuzz/seeds/*.bin "$out/corpus/"

swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
    -module-name WireFuzz \
    Sources/FTVMWire/*.swift Tests/Fuzz/WireFuzz.swift \
    -o "$out/wire-fuzz"

"$out/wire-fuzz" \
    -max_total_time="$seconds" \
    -max_len=1600 \
    -timeout=5 \
    -print_final_stats=1 \
    -artifact_prefix="$out/" \
    "$out/corpus" 2>&1 | tee "$out/last-run.log" | grep -Ev '^#[0-9]+\s+(NEW|REDUCE|pulse)' || true
status="${PIPESTATUS[0]}"
echo "fuzz-wire: $(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$out/last-run.log" || echo 'no stats') (log: $out/last-run.log)"
exit "$status"
