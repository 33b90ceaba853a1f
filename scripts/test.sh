#!/usr/bin/env bash
# All tests: unit tests and the integration tests that boot real guests through libvirt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
FTVM_INTEGRATION=1 swift test "$@"
