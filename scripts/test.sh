#!/usr/bin/env bash
# All tests: the unit tests and the integration tests that boot real guests through libvirt
# (debug build), then the pure unit suites again optimized (the wire layer's fuzzing once found
# a bug that only the optimizer produced). Ends with one line: "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
log=$(mktemp /tmp/ftvm-test.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
# The suites are XCTest; --disable-swift-testing keeps Swift Testing's empty run out of the output.
FTVM_INTEGRATION=1 swift test --disable-swift-testing "$@" 2>&1 | tee -a "$log" || status=$?
if [ $# -eq 0 ]; then
  echo "test: the unit suites again, optimized" >&2
  swift test -c release -Xswiftc -enable-testing --disable-swift-testing \
    --filter "FTVMWireTests|FTVMLogTests|FTVMChannelTests|FTVMControllerTests|FTVMDemoKitTests" 2>&1 | tee -a "$log" || status=$?
fi
if [ $# -eq 0 ]; then
  # Outside `swift test`: install.sh runs SwiftPM, which would wait for swift test's build lock.
  echo "test: scripts/install.sh into a scratch --destdir, completions, man pages, uninstall" >&2
  bash scripts/test-install.sh 2>&1 | tee -a "$log" || status=$?
fi
# Each run's last line: "Executed N tests, with [K tests skipped and] F failures (...)".
passed=0 failed=0 skipped=0
while read -r summary; do
  number() { grep -oE "[0-9]+ $1" <<<"$summary" | head -n 1 | grep -oE "^[0-9]+" || echo 0; }
  total=$(number "tests?,")
  f=$(number "failures?")
  s=$(number "tests? skipped")
  passed=$((passed + total - f - s)) failed=$((failed + f)) skipped=$((skipped + s))
done < <(grep -E "Test Suite '(All|Selected) tests' (passed|failed)" -A 1 "$log" | grep -E "Executed [0-9]+ tests?, with" || true)
if summary=$(grep -E '^install: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1); then
  passed=$((passed + $(cut -d' ' -f2 <<<"$summary"))) failed=$((failed + $(cut -d' ' -f4 <<<"$summary")))
fi
# The failures, with their assertion messages, just above the last line: CI shows only the tail.
grep -E "^Test Case '.*' failed \(|: error: " "$log" | tail -n 40 || true
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
