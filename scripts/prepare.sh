#!/usr/bin/env bash
# Everything the demo and the tests need, from a fresh Debian 12 machine (as root): packages,
# libvirt daemons, the ftvm build, the guest binaries and the guest images. Each step is skipped
# when already done; the images are rebuilt when the guest binaries change.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The daemon runs the release build: the relay's per-frame work is on the packet path.
echo "prepare: building ftvm (release)" >&2
swift build -c release --product ftvm 2>&1 | tail -n 1 >&2
bin=$(bash guest-agent/build.sh)

# The default image (version 1.0.0) and the upgrade image (version 2.0.0), same services.
build_image() { # version, out
  local version=$1 out=$2
  if [ -f "$out/image.env" ] && [ ! images/build.sh -nt "$out/image.env" ] \
    && grep -qx "FTVM_IMAGE_VERSION=$version" "$out/image.env" \
    && grep -qx "FTVM_AGENT_SHA256=$(sha256sum < "$bin/ftvm-agent" | cut -c1-64)" "$out/image.env" \
    && grep -qx "FTVM_SERVICE_SHA256=$(sha256sum < "$bin/ftvm-demo-service" | cut -c1-64)" "$out/image.env"; then
    return
  fi
  echo "prepare: building guest image $version in $out" >&2
  bash images/build.sh --agent "$bin/ftvm-agent" --service "$bin/ftvm-demo-service" --version "$version" --out "$out" >&2
}
build_image 1.0.0 /var/lib/ftvm/images/default
build_image 2.0.0 /var/lib/ftvm/images/v2

# The Debian disk guest an operator would have, for `ftvm protect` (ProtectTests, docs/protect.md),
# and its version 2 (the same but for the version it reports and serves at /version.txt), for
# `ftvm upgrade --disk`: rebuilt when the agent or the build script changes (a stamp of both
# beside each).
build_disk() { # version, out
  local version=$1 disk=$2
  local stamp
  stamp="$(sha256sum < "$bin/ftvm-agent" | cut -c1-64) $(sha256sum < images/build-disk.sh | cut -c1-64) $version"
  if [ ! -f "$disk" ] || [ "$(cat "$disk.stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "prepare: building the disk guest $version in $disk" >&2
    mkdir -p "$(dirname "$disk")"
    bash images/build-disk.sh --out "$disk" --ip 10.78.0.2/24 --agent "$bin/ftvm-agent" --version "$version" >&2
    echo "$stamp" > "$disk.stamp"
  fi
}
build_disk disk-1.0.0 /var/lib/ftvm/images/disk/disk.qcow2
build_disk disk-2.0.0 /var/lib/ftvm/images/disk-v2/disk.qcow2
echo "prepare: ready" >&2
