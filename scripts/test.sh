#!/usr/bin/env bash
# All tests: the unit tests and the integration tests that boot real guests through libvirt
# (debug build), then the install test, the pure unit suites again optimized (the wire layer's
# fuzzing once found a bug that only the optimizer produced), and each fuzz harness for a few
# seconds (FTVM_FUZZ_SECONDS, default 10) on its corpus. scripts/test-count.sh counts test
# cases, fails the run on a skip its allow-list does not name, and ends with one line:
# "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
log=$(mktemp /tmp/ftvm-test.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
# The suites are XCTest; --disable-swift-testing keeps Swift Testing's empty run out of the output.
FTVM_INTEGRATION=1 swift test --disable-swift-testing "$@" 2>&1 | tee -a "$log" || status=$?
if [ $# -eq 0 ]; then
  # Outside `swift test`: install.sh runs SwiftPM, which would wait for swift test's build lock.
  # Before the optimized suites: after their -enable-testing build, install.sh's plain release
  # build would compile every module again.
  echo "test: scripts/install.sh into a scratch --destdir, completions, man pages, uninstall" >&2
  bash scripts/test-install.sh 2>&1 | tee -a "$log" || status=$?
fi
if [ $# -eq 0 ]; then
  echo "test: the unit suites again, optimized" >&2
  swift test -c release -Xswiftc -enable-testing --disable-swift-testing \
    --filter "FTVMWireTests|FTVMHTTPTests|FTVMLogTests|FTVMChannelTests|FTVMDataPlaneTests|FTVMControllerTests|FTVMDemoKitTests" 2>&1 \
    | tee -a "$log" || status=$?
fi
if [ $# -eq 0 ]; then
  echo "test: the fuzz harnesses, ${FTVM_FUZZ_SECONDS:-10} s each" >&2
  bash scripts/fuzz-wire.sh "${FTVM_FUZZ_SECONDS:-10}" all 2>&1 | tee -a "$log" || status=$?
fi
bash scripts/test-count.sh "$log" || status=$?
exit "$status"
