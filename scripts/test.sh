#!/usr/bin/env bash
# All tests: unit tests and the integration tests that boot real guests through libvirt.
# Ends with one summary line, "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
log=$(mktemp /tmp/ftvm-test.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
# The suites are XCTest; --disable-swift-testing keeps Swift Testing's empty run out of the output.
FTVM_INTEGRATION=1 swift test --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
# XCTest's last line: "Executed N tests, with [K tests skipped and] F failures (...)".
summary=$(grep -E "Executed [0-9]+ tests?, with" "$log" | tail -n 1 || true)
number() { grep -oE "[0-9]+ $1" <<<"$summary" | head -n 1 | grep -oE "^[0-9]+" || echo 0; }
if [ -n "$summary" ]; then
  total=$(number "tests?,")
  failed=$(number "failures?")
  skipped=$(number "tests? skipped")
  echo "$((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit "$status"
