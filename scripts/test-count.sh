#!/usr/bin/env bash
# Counts what scripts/test.sh ran, from its log: XCTest's per-test lines
# ("Test Case 'Class.test' passed|failed|skipped (…)"), a test case that started and never
# finished (its process died) as failed, scripts/test-install.sh's "install: N passed, N failed",
# and scripts/fuzz-wire.sh's "fuzz-wire: NAME exit N" (one case per harness, failed on a crash).
# XCTest's own summary counts failed assertions, and a test that failed and then skipped both
# ways; it is not used. Prints the failures, then one last line "N passed, N failed, N skipped".
# Exits 1 when a test case failed, or was skipped and the allow-list below does not name it.
#
#   bash scripts/test-count.sh LOG
set -euo pipefail
log="$1"

# The skips a run may have, with why each is no setup bug. Anything else skipped fails the run:
# test.sh runs as root (prepare.sh installs packages) with FTVM_INTEGRATION=1 and everything
# prepare.sh sets up, so a skip for want of root, a tool, an image or a golden file is a bug.
allowed_skips=(
  "CRC32CTests.testHardwareAgreesWithSoftware|a CPU feature: no SSE4.2 crc32 instruction (the software CRC is tested everywhere)"
  "BenchmarkTests.testBodyThroughput|an opt-in benchmark: FTVM_HTTP_BENCH=1"
  "BenchmarkTests.testHeadThroughput|an opt-in benchmark: FTVM_HTTP_BENCH=1"
  "RelayServerTests.testProxiedSessionsAcrossADaemonKilledInATakeover|a known weak point, run by hand: FTVM_KNOWN_WEAK=1 (docs/relay-servers.md, Weak points)"
  "RelayServerTests.testNginxProxyDownloadAcrossKernelPanic|a known weak point, run by hand: FTVM_KNOWN_WEAK=1 (docs/relay-servers.md, Weak points)"
  "LibvirtDomainIntegrationTests.testGuestPanicIsReportedAndPreserved|opt-in: needs a kernel and an initrd that panics (FTVM_TEST_PANIC_KERNEL, FTVM_TEST_PANIC_INITRD); FailoverTests.testKernelPanic covers pvpanic with the real image"
)

# One "VERDICT NAME" line per test case, in order.
verdicts=$(awk '
  match($0, /Test Case '\''[^'\'']+'\'' started at /) {
    if (pending != "") print "crashed", pending
    pending = substr($0, RSTART + 11, RLENGTH - 11 - 13)
    next
  }
  match($0, /Test Case '\''[^'\'']+'\'' (passed|failed|skipped) \(/) {
    split(substr($0, RSTART + 11, RLENGTH - 11 - 2), parts, "'\'' ")
    print parts[2], parts[1]
    pending = ""
  }
  END { if (pending != "") print "crashed", pending }
' "$log")
count() { grep -c "^$1 " <<<"$verdicts" || true; }
passed=$(count passed) failed=$(($(count failed) + $(count crashed))) skipped=$(count skipped)

if summary=$(grep -E '^install: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1); then
  passed=$((passed + $(cut -d' ' -f2 <<<"$summary"))) failed=$((failed + $(cut -d' ' -f4 <<<"$summary")))
fi
fuzzed=$(grep -E '^fuzz-wire: [a-z]+ exit [0-9]+;' "$log" || true)
fuzz_failed=$(grep -cv ' exit 0;' <<<"$fuzzed" || true)
if [ -n "$fuzzed" ]; then
  passed=$((passed + $(wc -l <<<"$fuzzed") - fuzz_failed)) failed=$((failed + fuzz_failed))
fi

# The failures, with their assertion messages, just above the last line: CI shows only the tail.
grep -E "Test Case '.*' failed \(|: error: " "$log" | tail -n 40 || true
grep '^crashed ' <<<"$verdicts" | sed 's/^crashed \(.*\)/test: \1 started and never finished (its process died)/' || true
grep -E '^fuzz-wire: [a-z]+ exit [1-9]' "$log" || true
status=0
while read -r _ name; do
  [ -n "$name" ] || continue
  allowed=""
  for entry in "${allowed_skips[@]}"; do
    if [ "${entry%%|*}" = "$name" ]; then allowed="${entry#*|}"; fi
  done
  if [ -z "$allowed" ]; then
    # (XCTest on Linux: "FILE:LINE: NAME : Test skipped: required … - MESSAGE". No such line
    # must not end the script under `set -e` before it says what was skipped.)
    why=$(grep -F " $name : Test skipped" "$log" | head -n 1 | sed 's/.* : Test skipped[:-] *//' || true)
    echo "test: $name was skipped ($why), and scripts/test-count.sh does not allow that skip"
    status=1
  fi
done < <(grep '^skipped ' <<<"$verdicts" | sort -u)
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || status=1
exit "$status"
