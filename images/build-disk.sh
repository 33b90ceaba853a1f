#!/usr/bin/env bash
# Builds an ordinary Debian 12 guest disk, the kind an operator runs under libvirt and ftvm can
# protect (docs/image.md, "Disk guest"): systemd, Debian's nginx serving /var/www/html (with
# splitmix-64M.bin), a static IPv4 address through systemd-networkd, Debian's cloud kernel, and
# the ftvm agent installed from its .deb.
#
#   images/build-disk.sh --out FILE.qcow2 --ip ADDR/PREFIX [--gateway ADDR] [--agent PATH]
#                        [--version STRING] [--hostname NAME] [--size MiB]
#
#   --agent    the agent binary (guest-agent/build.sh's ftvm-agent) or a ready ftvm-agent .deb;
#              default: build it with guest-agent/build.sh
#   --version  what the agent reports as the image version (default disk-1.0.0)
#   --hostname default ftvm-disk;  --size  the ext4 file system in MiB (default 2048)
#
# Writes FILE.qcow2 (a whole-disk ext4 file system, no partition table, no boot loader),
# FILE.vmlinuz and FILE.initrd for libvirt's direct kernel boot (root=/dev/vda), and
# FILE.manifest (every package and version in the image) and FILE.env (KEY=value: the address,
# versions, SHA-256s, build time). Runs as root (mmdebstrap's root mode).
# Downloaded .debs are cached in /var/cache/ftvm/debs (FTVM_CACHE_DIR overrides /var/cache/ftvm).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
note() { echo "build-disk: $*" >&2; }
die() { note "error: $*"; exit 1; }
usage() { sed -n '7,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

out='' ip='' gateway='' agent='' version=disk-1.0.0 hostname=ftvm-disk size_mib=2048
while [ $# -gt 0 ]; do
  case "$1" in
    --out|--ip|--gateway|--agent|--version|--hostname|--size)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --out) out=$2 ;; --ip) ip=$2 ;; --gateway) gateway=$2 ;; --agent) agent=$2 ;;
        --version) version=$2 ;; --hostname) hostname=$2 ;; --size) size_mib=$2 ;;
      esac
      shift 2 ;;
    -h|--help) usage ;;
    *) note "unknown argument $1"; usage ;;
  esac
done
[ -n "$out" ] || die "--out FILE.qcow2 is required"
[ -n "$ip" ] || die "--ip ADDR/PREFIX is required (the guest's static IPv4 address, e.g. 192.168.122.50/24)"
case "$out" in *.qcow2) ;; *) die "--out $out must end in .qcow2 (FILE.vmlinuz and FILE.initrd go next to it)" ;; esac
[[ "$version" =~ ^[A-Za-z0-9._+-]{1,31}$ ]] || die "--version $version: 1-31 characters of [A-Za-z0-9._+-] (a 32-byte channel field)"
[[ "$hostname" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || die "--hostname $hostname is not a host name (a-z, 0-9, inner -)"
[[ "$size_mib" =~ ^[0-9]+$ ]] && [ "$size_mib" -ge 1024 ] || die "--size $size_mib: a number of MiB, at least 1024"

# The address: an IPv4 host address with its prefix; the gateway inside that subnet.
python3 - "$ip" "$gateway" <<'EOF' || exit 1
import ipaddress, sys
ip, gateway = sys.argv[1], sys.argv[2]
def fail(message):
    sys.exit(f"build-disk: error: {message}")
if "/" not in ip:
    fail(f"--ip {ip} has no /PREFIX (e.g. {ip}/24)")
try:
    interface = ipaddress.IPv4Interface(ip)
except ValueError as error:
    fail(f"--ip {ip} is not an IPv4 ADDR/PREFIX: {error}")
network = interface.network
if network.prefixlen < 31 and interface.ip in (network.network_address, network.broadcast_address):
    fail(f"--ip {ip} is the {'network' if interface.ip == network.network_address else 'broadcast'} address of {network}, not a host's")
if gateway:
    try:
        gw = ipaddress.IPv4Address(gateway)
    except ValueError as error:
        fail(f"--gateway {gateway} is not an IPv4 address: {error}")
    if gw not in network or gw == interface.ip:
        fail(f"--gateway {gateway} must be another address in {network}")
EOF

# Tools, each with the Debian package that has it (scripts/setup.sh installs them all).
[ "$(id -u)" = 0 ] || die "run as root: mmdebstrap builds the root file system in root mode (chroot)"
for tool in mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs debugfs:e2fsprogs e2fsck:e2fsprogs qemu-img:qemu-utils dpkg-deb:dpkg python3:python3; do
  command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is missing: apt-get install ${tool#*:} (or run scripts/setup.sh)"
done
[[ "$(mkfs.ext4 -V 2>&1)" =~ mke2fs\ 1\.(4[3-9]|[5-9][0-9]) ]] || die "mkfs.ext4 is older than 1.43 and has no -d (e2fsprogs from Debian 12 has it)"

out=$(realpath -m "$out")
base=${out%.qcow2}
parent=$(dirname "$out")
mkdir -p "$parent"
cache=${FTVM_CACHE_DIR:-/var/cache/ftvm}/debs
mkdir -p "$cache"

# Room: the root tree (~0.4 GiB), the raw file system (sparse: what it holds), the qcow2 copy.
need_mib=2048
have_mib=$(df -Pm "$parent" | awk 'NR == 2 { print $4 }')
[ "$have_mib" -ge "$need_mib" ] || die "no space: $parent has $have_mib MiB free, the build needs $need_mib MiB"
have_mib=$(df -Pm "$cache" | awk 'NR == 2 { print $4 }')
[ "$have_mib" -ge 256 ] || die "no space: $cache (the .deb cache) has $have_mib MiB free, needs 256 MiB"

# The agent's package: as given, or built from this worktree.
if [ -z "$agent" ]; then
  note "building the agent (guest-agent/build.sh)"
  agent="$(bash "$repo/guest-agent/build.sh")/ftvm-agent"
fi
[ -f "$agent" ] || die "--agent $agent does not exist"

# The mirror apt already uses: the host's Debian 12 sources (one-line and deb822 formats).
mapfile -t mirrors < <(python3 - <<'EOF'
import glob, re
wanted = ("bookworm", "bookworm-updates", "bookworm-security")
found = []
def add(uri, suites, components):
    for suite in suites:
        if suite in wanted and "main" in components:
            line = f"deb {uri} {suite} main"
            if line not in found:
                found.append(line)
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        text = open(path).read()
    except OSError:
        continue
    for raw in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", raw.split("#")[0]).split()
        if len(words) >= 4 and words[0] == "deb":
            add(words[1], [words[2]], words[3:])
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith("#") and not line[0].isspace():
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []):
            for uri in fields.get("uris", []):
                add(uri, fields.get("suites", []), fields.get("components", []))
print("\n".join(found))
EOF
)
[ ${#mirrors[@]} -gt 0 ] && [ -n "${mirrors[0]}" ] || die "no Debian 12 (bookworm) main source in /etc/apt/sources.list*; add the mirror apt should use"
note "mirrors: ${mirrors[*]}"

# Leftovers of builds killed outright; live builds are younger than this.
find "$parent" -maxdepth 1 -name ".$(basename "$out").build.*" -mmin +120 -exec rm -rf {} + 2>/dev/null || true
stage=$(mktemp -d "$parent/.$(basename "$out").build.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 130' INT TERM HUP
root=$stage/root
mkdir -p "$stage/deb"

# The agent as an operator installs it: a .deb, installed with dpkg inside the new system.
case "$agent" in
  *.deb) cp "$agent" "$stage/deb/ftvm-agent.deb" ;;
  *) deb=$(bash "$repo/guest-agent/package-deb.sh" --agent "$agent" --out "$stage/deb")
     mv "$deb" "$stage/deb/ftvm-agent.deb" ;;
esac
dpkg-deb -f "$stage/deb/ftvm-agent.deb" Package | grep -qx ftvm-agent || die "$agent is not the ftvm-agent package"

# A fixed time for every timestamp the build can fix (files, file system, package scripts).
epoch=1700000000
export SOURCE_DATE_EPOCH=$epoch
# The packages: systemd as init, udev (NIC and ACPI button drivers load from it), dbus (which
# systemd-logind, who handles the ACPI power button for `virsh shutdown`, needs), the cloud
# kernel and initramfs-tools (its initrd has virtio_blk and ext4), nginx, iproute2.
packages=systemd,systemd-sysv,udev,dbus,linux-image-cloud-amd64,initramfs-tools,nginx,iproute2
note "installing Debian 12 into $root (cache $cache)"
if ! mmdebstrap --quiet --variant=apt --include="$packages" \
  --skip=download/empty --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $cache /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $cache" \
  --customize-hook="copy-in $stage/deb/ftvm-agent.deb /tmp" \
  --customize-hook='chroot "$1" dpkg -i /tmp/ftvm-agent.deb' \
  --customize-hook='rm "$1"/tmp/ftvm-agent.deb' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
  bookworm "$root" "${mirrors[@]}" >"$stage/mmdebstrap.log" 2>&1; then
  tail -n 30 "$stage/mmdebstrap.log" >&2
  die "mmdebstrap failed (last lines above)"
fi
kver=$(basename "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)"); kver=${kver#vmlinuz-}
[ -f "$root/boot/initrd.img-$kver" ] || die "the image has no initrd for kernel $kver (initramfs-tools did not run?)"

# Configuration, as an operator would write it.
echo "$hostname" >"$root/etc/hostname"
cat >"$root/etc/hosts" <<EOF
127.0.0.1 localhost
127.0.1.1 $hostname
EOF
cat >"$root/etc/fstab" <<'EOF'
# The whole disk is one ext4 file system (no partition table): see docs/image.md, "Disk guest".
/dev/vda / ext4 rw,errors=remount-ro 0 1
EOF
# The NIC by kind, not by PCI slot: whatever name udev gives a virtio NIC (enp1s0, ens3, eth0).
{
  echo "# Written by images/build-disk.sh: the guest's static address on its (one) Ethernet NIC."
  echo "[Match]"
  echo "Name=en* eth*"
  echo
  echo "[Network]"
  echo "Address=$ip"
  [ -z "$gateway" ] || echo "Gateway=$gateway"
  echo "# IPv4 only: no link-local IPv6 chatter from two guests that share one MAC (ftvm's pair)."
  echo "LinkLocalAddressing=no"
  echo "IPv6AcceptRA=no"
} >"$root/etc/systemd/network/10-ftvm.network"
# What the agent supervises (a conffile of the .deb, edited as an operator edits it).
cat >"$root/etc/ftvm/agent.conf" <<'EOF'
# Services the ftvm guest agent supervises (docs/image.md, "Disk guest"): NAME PORT unit:UNIT.
nginx 80 unit:nginx.service
EOF
echo "$version" >"$root/etc/ftvm/version"
# The version on the wire too, so a client (and an upgrade's test) can tell two builds apart.
echo "$version" >"$root/var/www/html/version.txt"
# nginx as Debian configures it (the default site serves /var/www/html on port 80), plus what
# ftvm's replay wants: the same headers from every build and nginx update (no version in
# Server:), and long keep-alive sessions.
cat >"$root/etc/nginx/conf.d/ftvm.conf" <<'EOF'
# Written by images/build-disk.sh (docs/image.md, "Disk guest").
server_tokens off;
keepalive_requests 1000000;
keepalive_timeout 300s;
EOF
python3 -B "$repo/Tests/tools/splitmix.py" --write 67108864 1 >"$root/var/www/html/splitmix-64M.bin"
splitmix_sha=$(sha256sum "$root/var/www/html/splitmix-64M.bin" | cut -d' ' -f1)
# What `python3 Tests/tools/splitmix.py 67108864 1` prints (its slow reference).
[ "$splitmix_sha" = fad3a28c49030ede8d0614b2b6d7b670cc38bcdb5ba779d3ce1a56f278abc8f3 ] ||
  die "splitmix-64M.bin has SHA-256 $splitmix_sha, not the splitmix64 stream's (did Tests/tools/splitmix.py change?)"

# Files that differ between two builds with the same packages and are rebuilt on the guest or
# not needed: caches, logs (the files only: nginx needs /var/log/nginx), the machine id
# (systemd makes one at first boot).
find "$root/var/log" -type f -delete
rm -rf "$root"/var/cache/ldconfig/aux-cache "$root"/var/cache/debconf/*-old \
  "$root"/var/lib/dpkg/*-old "$root"/var/lib/systemd/catalog/database
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$stage/manifest"
find "$root" -newermt "@$epoch" -exec touch -h -d "@$epoch" {} +
find "$root" -exec touch -h -a -d "@$epoch" {} +

# The disk: ext4 populated from the tree (mkfs.ext4 -d needs no loop device and no mount), with
# a fixed UUID, hash seed and time, so the same tree gives the same bytes. mkfs.ext4 copies each
# file's ctime too, which no tool can set on the tree, so debugfs sets every inode's ctime (and
# atime), and the superblock's last write time, to the fixed time afterwards; e2fsck then checks
# the result.
uuid=6d1c5a1e-f7a0-4d5e-9a3b-2f7e1d0c4b8a
note "making the file system ($size_mib MiB) and the qcow2"
if ! E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -F -L ftvm-root -U "$uuid" -E "hash_seed=$uuid,root_owner=0:0" \
  -d "$root" "$stage/disk.raw" "${size_mib}M" >"$stage/mkfs.log" 2>&1; then
  cat "$stage/mkfs.log" >&2
  die "mkfs.ext4 -d failed (above; 'No space left on device' means --size is too small or the disk is full)"
fi
{
  echo "sif / ctime $epoch"
  echo "ssv wtime $epoch"
  (cd "$root" && find . -mindepth 1 -printf '%P\n') | while IFS= read -r path; do
    [[ "$path" != *'"'* ]] || die "cannot fix the times of $path (a quote in its name)"
    printf 'sif "/%s" ctime %s\nsif "/%s" atime %s\n' "$path" "$epoch" "$path" "$epoch"
  done
} >"$stage/times.debugfs"
E2FSPROGS_FAKE_TIME=$epoch debugfs -w -f "$stage/times.debugfs" "$stage/disk.raw" >"$stage/debugfs.log" 2>&1
if grep -v '^debugfs' "$stage/debugfs.log" | grep -q .; then
  grep -v '^debugfs' "$stage/debugfs.log" | head -n 5 >&2
  die "debugfs could not set the inode times (above)"
fi
e2fsck -fn "$stage/disk.raw" >"$stage/e2fsck.log" 2>&1 || { cat "$stage/e2fsck.log" >&2; die "e2fsck finds the new file system damaged (above)"; }
qemu-img convert -q -f raw -O qcow2 "$stage/disk.raw" "$stage/disk.qcow2"
rm -f "$stage/disk.raw"
cp "$root/boot/vmlinuz-$kver" "$stage/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$stage/initrd"
cat >"$stage/env" <<EOF
FTVM_DISK_IP=$ip
FTVM_DISK_GATEWAY=$gateway
FTVM_DISK_HOSTNAME=$hostname
FTVM_IMAGE_VERSION=$version
FTVM_KERNEL_VERSION=$kver
FTVM_AGENT_PACKAGE=$(dpkg-deb -f "$stage/deb/ftvm-agent.deb" Version)
FTVM_AGENT_DEB_SHA256=$(sha256sum "$stage/deb/ftvm-agent.deb" | cut -d' ' -f1)
FTVM_QCOW2_SHA256=$(sha256sum "$stage/disk.qcow2" | cut -d' ' -f1)
FTVM_BUILT_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
chmod 644 "$stage/disk.qcow2" "$stage/vmlinuz" "$stage/initrd" "$stage/manifest" "$stage/env"

# Into place: the kernel, initrd and manifest first, the qcow2 last (each rename is atomic).
mv "$stage/vmlinuz" "$base.vmlinuz"
mv "$stage/initrd" "$base.initrd"
mv "$stage/manifest" "$base.manifest"
mv "$stage/env" "$base.env"
mv "$stage/disk.qcow2" "$out"
note "built $out ($(du -h "$out" | cut -f1) allocated, $size_mib MiB ext4), $base.vmlinuz and $base.initrd (kernel $kver); boot with root=/dev/vda"
