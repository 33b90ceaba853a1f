#!/usr/bin/env bash
# Packages the guest agent as a Debian package an operator installs into any systemd guest:
#   /usr/sbin/ftvm-agent, /lib/systemd/system/ftvm-agent.service (enabled on install),
#   /etc/ftvm/agent.conf (a conffile: the services to supervise).
# Usage: guest-agent/package-deb.sh --agent PATH --out DIR [--version VERSION]
# Writes DIR/ftvm-agent_VERSION_amd64.deb and prints its path. The same agent binary and version
# give the same .deb, byte for byte (fixed mtimes, SOURCE_DATE_EPOCH, root:root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "package-deb: $*" >&2; exit 1; }

agent='' out='' version=1.0.0
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=${2:?--agent needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --version) version=${2:?--version needs a value}; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$agent" ] && [ -n "$out" ] || die "usage: package-deb.sh --agent PATH --out DIR [--version VERSION]"
[ -x "$agent" ] || die "$agent is not an executable (build it with guest-agent/build.sh)"
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "version $version is not a Debian version (digits first, then [A-Za-z0-9.+~-])"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: apt-get install dpkg (scripts/setup.sh)"

# The agent is built with --static-swift-stdlib: only glibc and the GCC runtime remain dynamic.
# Anything else means a build this package's Depends: line does not describe.
depends="libc6 (>= 2.34), libgcc-s1, libstdc++6"
while read -r lib; do
  case "$lib" in
    libc.so.6|libm.so.6|libstdc++.so.6|libgcc_s.so.1|ld-linux-x86-64.so.2|linux-vdso.so.1) ;;
    *) die "$agent needs $lib, which Depends: ($depends) does not provide; build it with guest-agent/build.sh (--static-swift-stdlib)" ;;
  esac
done < <(ldd "$agent" | awk '{ print $1 }' | xargs -n1 basename)

mkdir -p "$out"
stage=$(mktemp -d "$out/.ftvm-agent-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -D -m 755 "$agent" "$root/usr/sbin/ftvm-agent"
install -D -m 644 "$here/debian/ftvm-agent.service" "$root/lib/systemd/system/ftvm-agent.service"
install -D -m 644 "$here/debian/agent.conf" "$root/etc/ftvm/agent.conf"
mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CONTROL
Package: ftvm-agent
Version: $version
Architecture: amd64
Maintainer: ftvm <ftvm@localhost>
Depends: $depends
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: ftvm guest agent
 Runs inside a guest that ftvm protects: beats a heartbeat in the ivshmem channel the host
 reads, supervises the services in /etc/ftvm/agent.conf (systemd units or commands), runs the
 host's fault-injection commands and, after a failover resumes the guest, sets its clock and
 announces its addresses.
CONTROL
echo /etc/ftvm/agent.conf >"$root/DEBIAN/conffiles"
# Enable on install; start at once only on a running systemd (not in an image being built).
cat >"$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  systemctl enable ftvm-agent.service >/dev/null 2>&1 || true
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl restart ftvm-agent.service || true
  fi
fi
SCRIPT
cat >"$root/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop ftvm-agent.service || true
fi
SCRIPT
cat >"$root/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = purge ] || [ "$1" = remove ]; then
  systemctl disable ftvm-agent.service >/dev/null 2>&1 || true
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
SCRIPT
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
find "$root" -exec touch -h -d @1700000000 {} +
deb="$out/ftvm-agent_${version}_amd64.deb"
SOURCE_DATE_EPOCH=1700000000 dpkg-deb --root-owner-group -Zxz --build "$root" "$stage/package.deb" >/dev/null
mv "$stage/package.deb" "$deb"
echo "$deb"
