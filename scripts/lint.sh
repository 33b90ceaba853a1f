#!/usr/bin/env bash
# The one formatter: `swift format` (bundled with the toolchain) with the repository's
# .swift-format (120 columns, 4 spaces). Fails on any difference; `--fix` rewrites the files.
#
#   bash scripts/lint.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(Package.swift Sources Tests guest-agent)
if [ "${1:-}" = "--fix" ]; then
  swift format format --in-place --recursive "${paths[@]}"
fi
swift format lint --strict --recursive "${paths[@]}"
echo "lint: swift format finds nothing to change" >&2
