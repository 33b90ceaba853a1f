#!/usr/bin/env bash
# Builds the guest-side binaries (agent and demo service) for the image: release, with the Swift
# runtime linked statically so the initramfs needs only glibc. Prints the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-guest
for product in ftvm-agent ftvm-demo-service; do
  swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product "$product" >&2
done
swift build -c release --static-swift-stdlib --scratch-path "$scratch" --show-bin-path
