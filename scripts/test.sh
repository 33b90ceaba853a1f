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
summary=$(grep -E "^\s*Executed [0-9]+ tests?, with" "$log" | tail -n 1 || true)
total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$summary")
skipped=$(grep -oE "[0-9]+ tests? skipped" <<<"$summary" | grep -oE "^[0-9]+" || echo 0)
if [ -n "$summary" ]; then
  echo "$((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit "$status"
