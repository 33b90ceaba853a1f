#!/usr/bin/env bash
# Installs what ftvm needs on a fresh Debian 12 machine (as root) and starts virtlogd and
# libvirtd when they are not running. Safe to run again: it only does what is missing.
set -euo pipefail

# The third line: ocf-tester and the OCF shell functions the Pacemaker agent (contrib/ocf/ftvm)
# uses, xmllint for its meta-data, and promtool (Debian's prometheus), which the metrics tests
# run on a scrape (docs/metrics.md); systemd-analyze (systemd), which checks
# contrib/systemd/ftvm@.service, and setpriv (util-linux), with which a test runs the daemon
# under the unit's capability set. The fourth line: what images/build-disk.sh needs (mmdebstrap
# for the Debian root, e2fsprogs for mkfs.ext4 -d and debugfs, dpkg-deb for the agent's .deb,
# the archive key; qemu-utils above has qemu-img). The fifth: tmux, man-db and groff-base, for
# the tests of `ftvm watch` (a real terminal) and of the man pages. The last line: the libraries
# Debian's nginx links, which images/build.sh copies from this host into the guest image (nginx
# itself is only downloaded, never installed). haproxy and openssl: HTTPS terminated on the host
# (docs/https.md). stress-ng: the host load of scripts/bench_starvation.py (docs/failover.md).
packages=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-daemon-driver-qemu
  libvirt-clients libvirt-dev libxml2-dev busybox-static cpio iproute2 curl wrk python3 python3-matplotlib
  resource-agents libxml2-utils prometheus systemd util-linux
  mmdebstrap e2fsprogs dpkg debian-archive-keyring
  tmux man-db groff-base
  haproxy openssl stress-ng
  libcrypt1 libpcre2-8-0 libssl3 zlib1g)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's udev rule gives /dev/kvm to group kvm; without udev it stays root-only, and libvirt
# then re-probes QEMU's capabilities on every call (a define took over a minute).
if [ -c /dev/kvm ]; then chgrp kvm /dev/kvm && chmod 0660 /dev/kvm; fi

# No systemd here: start the daemons ourselves, once.
start_daemon() { # name, pidfile
  local name=$1 pidfile=$2
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return; fi
  echo "setup: starting $name"
  # Not holding our stdout/stderr: whoever runs this script (a pipe, CI) sees its end.
  "/usr/sbin/$name" --daemon --pid-file "$pidfile" </dev/null >/dev/null 2>&1
}
mkdir -p /run/libvirt
start_daemon virtlogd /run/virtlogd.pid
start_daemon libvirtd /run/libvirtd.pid
for _ in $(seq 1 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "setup: libvirtd did not answer on qemu:///system; see /var/log/libvirt/libvirtd.log" >&2
exit 1
