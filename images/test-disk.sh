#!/usr/bin/env bash
# Boots the disk guest of images/build-disk.sh as an operator's libvirt domain and checks it
# (docs/image.md, "Disk guest"):
#   images/test-disk.sh FILE.qcow2 [--timeout SECONDS] [--console FILE]
#   (--console: keep the guest's console log of every boot in FILE, boots one after the other)
#
# The domain is Tests/IntegrationTests/Fixtures/operator-domain.xml on an isolated libvirt
# network with no host address (Fixtures/operator-network.xml), plus what ftvm adds to a guest
# it protects: the channel (<shmem>, ivshmem-plain, 1 MiB) and pvpanic. Under TCG, three boots,
# each from a fresh throwaway overlay over FILE.qcow2 (the image is never written):
#   1. boot to agent ready (timed); heartbeat advancing in /dev/shm; nginx serving
#      splitmix-64M.bin byte-exact to a client in a network namespace joined by a veth to the
#      bridge at MTU 1500; service-crash (restarted), service-hang (reported, then crashed and
#      restarted), resync (clock set, gratuitous ARP seen by the client), network-down; then
#      `virsh shutdown` (ACPI power button) ending the domain within the bound;
#   2. boot (timed); kernel-panic through sysrq: libvirt reports the domain crashed (pvpanic);
#   3. boot (timed); kernel-hang: the heartbeat stops.
# Prints the three boot times and their median. Needs root, libvirtd, curl, python3. Everything
# it creates (domain hdisk-guest, network hdisk-net, bridge hdisk0, namespace hdisk-client, veth
# hdisk-v0/hdisk-v1, /dev/shm/hdisk-guest-chan, a temp directory) is removed on exit, also on
# failure.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
channel_py=$repo/Tests/tools/channel.py
fixtures=$repo/Tests/IntegrationTests/Fixtures
say() { echo "test-disk: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }

disk='' timeout=240 shutdown_bound=60 keep_console=
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --console) keep_console=$(realpath -m "${2:?--console needs a file}"); : >"$keep_console"; shift 2 ;;
    -h|--help) sed -n '4p' "$0" | sed 's/^# //'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) disk=$1; shift ;;
  esac
done
[ -n "$disk" ] || die "usage: images/test-disk.sh FILE.qcow2 [--timeout SECONDS] [--console FILE]"
disk=$(realpath "$disk")
base=${disk%.qcow2}
for file in "$disk" "$base.vmlinuz" "$base.initrd" "$base.env"; do
  [ -f "$file" ] || die "$file is missing (build it with images/build-disk.sh --out $disk ...)"
done
[ "$(id -u)" = 0 ] || die "run as root (libvirt domains, network namespaces)"
command -v curl >/dev/null || die "curl is missing: apt-get install curl"
# shellcheck disable=SC1090
. "$base.env"
guest_ip=${FTVM_DISK_IP%/*}
prefix=${FTVM_DISK_IP#*/}
# The client: the highest host address of the guest's subnet (never the guest's own).
client_ip=$(python3 -c '
import ipaddress, sys
net = ipaddress.IPv4Interface(sys.argv[1]).network
hosts = [h for h in (net.broadcast_address - 1, net.broadcast_address - 2) if str(h) != sys.argv[1].split("/")[0]]
print(hosts[0])' "$FTVM_DISK_IP")

dom=hdisk-guest net=hdisk-net bridge=hdisk0 ns=hdisk-client veth=hdisk-v0 peer=hdisk-v1
mac=52:54:00:7d:15:01
shm_name=hdisk-guest-chan
shm=/dev/shm/$shm_name
work=$(mktemp -d /var/tmp/hdisk-test.XXXXXX)
chmod 755 "$work"
save_console() { [ -z "$keep_console" ] || cat "$work/console.log" >>"$keep_console" 2>/dev/null || true; }
cleanup() {
  save_console
  virsh -q destroy "$dom" >/dev/null 2>&1 || true
  virsh -q undefine "$dom" >/dev/null 2>&1 || true
  ip netns del "$ns" 2>/dev/null || true
  ip link del "$veth" 2>/dev/null || true
  virsh -q net-destroy "$net" >/dev/null 2>&1 || true
  virsh -q net-undefine "$net" >/dev/null 2>&1 || true
  rm -f "$shm"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
cleanup_leftovers() { # of an earlier run killed outright
  if virsh -q dominfo "$dom" >/dev/null 2>&1 || virsh -q net-info "$net" >/dev/null 2>&1 || ip netns list | grep -qw "$ns"; then
    say "removing leftovers of an earlier run"
    virsh -q destroy "$dom" >/dev/null 2>&1 || true
    virsh -q undefine "$dom" >/dev/null 2>&1 || true
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$veth" 2>/dev/null || true
    virsh -q net-destroy "$net" >/dev/null 2>&1 || true
    virsh -q net-undefine "$net" >/dev/null 2>&1 || true
  fi
}
cleanup_leftovers

# The expected SHA-256 of the big file, from the slow reference (independent of the build's).
python3 "$repo/Tests/tools/splitmix.py" 67108864 1 >"$work/expected.sha256" &
reference=$!

channel() { python3 "$channel_py" "$@"; }
field() { # channel JSON field via a python expression on `c`
  channel read "$shm" | python3 -c "import json, sys; c = json.load(sys.stdin); print($1)"
}

# The operator's network: a bridge with no host address, and a client namespace joined to it.
sed -e "s|@NAME@|$net|" -e "s|@BRIDGE@|$bridge|" "$fixtures/operator-network.xml" >"$work/network.xml"
virsh -q net-define "$work/network.xml" >/dev/null
virsh -q net-start "$net" >/dev/null
ip -o addr show dev "$bridge" | grep -q inet && die "bridge $bridge has a host address"
ip netns add "$ns"
ip link add "$veth" mtu 1500 type veth peer name "$peer" mtu 1500
sysctl -q -w "net.ipv6.conf.$veth.disable_ipv6=1"  # no link-local address on the host side
ip link set "$peer" netns "$ns"
ip link set "$veth" master "$bridge" up
ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip addr add "$client_ip/$prefix" dev "$peer"
ip netns exec "$ns" ip link set "$peer" up
# New neighbour entries from gratuitous ARP, so the client can see the guest's announcement.
ip netns exec "$ns" sysctl -q -w "net.ipv4.conf.$peer.arp_accept=1"
[ "$(cat "/sys/class/net/$bridge/mtu")" = 1500 ] || die "bridge MTU is $(cat "/sys/class/net/$bridge/mtu"), not 1500"

# The operator's domain, with what ftvm adds for a protected guest: the channel and pvpanic.
sed -e "s|@NAME@|$dom|" -e "s|@DISK@|$work/overlay.qcow2|" -e "s|@KERNEL@|$base.vmlinuz|" \
  -e "s|@INITRD@|$base.initrd|" -e "s|@NETWORK@|$net|" -e "s|@MAC@|$mac|" -e "s|@CONSOLE@|$work/console.log|" \
  -e "s|  </devices>|    <shmem name='$shm_name'><model type='ivshmem-plain'/><size unit='M'>1</size></shmem>\n    <panic model='isa'/>\n  </devices>|" \
  "$fixtures/operator-domain.xml" >"$work/domain.xml"
grep -q "<shmem name='$shm_name'>" "$work/domain.xml" || die "could not add <shmem> to the fixture"
virsh -q define "$work/domain.xml" >/dev/null

boot_times=()
boot() { # n: fresh overlay and channel, start, wait for agent ready; records the time
  local n=$1 t0 ready
  [ "$n" = 1 ] || save_console
  rm -f "$work/overlay.qcow2" "$work/console.log"
  qemu-img create -q -f qcow2 -F qcow2 -b "$disk" "$work/overlay.qcow2"
  channel format "$shm"
  chown libvirt-qemu "$shm"
  t0=$(date +%s.%N)
  virsh -q start "$dom" >/dev/null
  if ! ready=$(channel wait "$shm" ready "$timeout"); then
    tail -n 40 "$work/console.log" >&2 || true
    die "boot $n: the agent did not report ready within $timeout s (console above)"
  fi
  boot_times+=("$(python3 -c "print(f'{$ready - $t0:.2f}')")")
  say "boot $n: agent ready $(printf '%s' "${boot_times[-1]}") s after virsh start"
}
heartbeat() { field 'c["heartbeat"]'; }
wait_for() { # seconds, python condition on c, what
  local deadline=$(( $(date +%s) + $1 ))
  until [ "$(field "$2")" = True ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$3 not within $1 s: $(channel read "$shm")"
    sleep 0.1
  done
}
post() { # command [arg]: prints the reply; fails on no reply or a non-zero status
  local reply
  reply=$(channel post "$shm" "$@") || die "$1: no reply from the agent"
  [ "${reply%% *}" = 0 ] || die "$1: the agent answered $reply"
  echo "${reply#* }"
}
get() { ip netns exec "$ns" curl -sS --max-time "${2:-10}" -o /dev/null -w '%{http_code}' "http://$guest_ip$1"; }
wait_state() { # state-prefix seconds
  local deadline=$(( $(date +%s) + $2 ))
  until virsh domstate --reason "$dom" 2>/dev/null | grep -q "^$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "domain not '$1' within $2 s: $(virsh domstate --reason "$dom")"
    sleep 0.1
  done
}

# ---- Boot 1: the guest as a service -----------------------------------------------------------
boot 1
grep -q "ftvm-agent: ready" "$work/console.log" || die "no 'ftvm-agent: ready' on the console"
[ "$(field 'c["version"]')" = "$FTVM_IMAGE_VERSION" ] || die "the agent reports version $(field 'c["version"]')"
[ "$(field '[s["name"] + ":" + s["state"] + ":" + str(s["restarts"]) for s in c["services"]]')" = "['nginx:running:0']" ] ||
  die "services: $(field 'c["services"]')"
h1=$(heartbeat); sleep 1; h2=$(heartbeat)
say "heartbeat $h1 -> $h2 in 1 s (tick $(field 'c["tick_ms"]') ms)"
[ $((h2 - h1)) -ge 10 ] || die "the heartbeat advanced by $((h2 - h1)) in 1 s"

wait "$reference"
expected=$(cat "$work/expected.sha256")
t0=$(date +%s.%N)
ip netns exec "$ns" curl -sS --max-time 300 "http://$guest_ip/splitmix-64M.bin" -o "$work/download.bin" &
download=$!
# The connection's path MTU and MSS as the client's kernel sees them, sampled while it runs.
: >"$work/ss.txt"
while kill -0 "$download" 2>/dev/null && ! grep -q pmtu "$work/ss.txt"; do
  ip netns exec "$ns" ss -tni dst "$guest_ip" >"$work/ss.txt" || true
  sleep 0.05
done
wait "$download" || die "the download of splitmix-64M.bin failed"
t1=$(date +%s.%N)
got=$(sha256sum "$work/download.bin" | cut -d' ' -f1)
rm -f "$work/download.bin"
[ "$got" = "$expected" ] || die "splitmix-64M.bin has SHA-256 $got, expected $expected"
grep -q "pmtu:1500" "$work/ss.txt" || die "the client's connection does not run at path MTU 1500: $(cat "$work/ss.txt")"
say "64 MiB download from nginx at MTU 1500: SHA-256 right, $(python3 -c "print(f'{64 / ($t1 - $t0):.1f}')") MiB/s ($(grep -o 'advmss:[0-9]*' "$work/ss.txt" | head -n 1))"

# service-crash: the agent kills the unit's cgroup, reports the exit, restarts the unit.
t0=$(date +%s.%N)
say "service-crash: $(post service-crash 0)"
wait_for 10 'c["services"][0]["restarts"] >= 1 and c["services"][0]["state"] == "running"' "nginx restarted after service-crash"
[ "$(field 'c["services"][0]["last_exit"]')" = -9 ] || die "the crash was reported as exit $(field 'c["services"][0]["last_exit"]'), not -9 (SIGKILL)"
until [ "$(get / 2>/dev/null)" = 200 ]; do sleep 0.1; done
say "nginx answers again $(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')") s after the crash (last exit $(field 'c["services"][0]["last_exit"]'))"
# service-hang: every process of the unit stopped; the probe reports it hung; a crash ends it.
say "service-hang: $(post service-hang 0)"
wait_for 10 'c["services"][0]["state"] == "hung"' "nginx reported hung"
[ "$(get / 2 2>/dev/null || true)" != 200 ] || die "a hung nginx still answered"
say "nginx reported hung; service-crash: $(post service-crash 0)"
wait_for 15 'c["services"][0]["restarts"] >= 2 and c["services"][0]["state"] == "running"' "nginx restarted after the hang"
until [ "$(get / 2>/dev/null)" = 200 ]; do sleep 0.1; done
# resync: the clock set from the host, the address announced (the client learns the MAC).
ip netns exec "$ns" ip neigh flush dev "$peer"
reply=$(post resync)
say "resync: $reply"
grep -q "announced $guest_ip" <<<"$reply" || die "resync announced nothing for $guest_ip"
sleep 0.5
ip netns exec "$ns" ip neigh show "$guest_ip" dev "$peer" | grep -qi "lladdr $mac" ||
  die "the client did not learn $guest_ip at $mac from the announcement: $(ip netns exec "$ns" ip neigh show dev "$peer")"
skew=$(python3 -c "import time; print(abs(time.time_ns() - $(field 'c["guest_clock_ns"]')) / 1e9)")
python3 -c "import sys; sys.exit(0 if $skew < 2 else 1)" || die "the guest clock is $skew s off after resync"
say "gratuitous ARP seen by the client; guest clock within $skew s of the host"
# network-down: no answer any more, the heartbeat goes on.
say "network-down: $(post network-down)"
[ "$(get / 3 2>/dev/null || true)" != 200 ] || die "nginx still answered after network-down"
h1=$(heartbeat); sleep 0.5; h2=$(heartbeat)
[ "$h2" -gt "$h1" ] || die "the heartbeat stopped after network-down"
# virsh shutdown: the ACPI power button, systemd-logind, poweroff.
t0=$(date +%s.%N)
virsh -q shutdown "$dom" >/dev/null
wait_state "shut off" "$shutdown_bound"
say "virsh shutdown: shut off after $(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')") s (bound $shutdown_bound s)"

# ---- Boot 2: kernel panic ---------------------------------------------------------------------
boot 2
channel send "$shm" kernel-panic
wait_state "shut off (crashed)" 30
say "kernel-panic: $(virsh domstate --reason "$dom")"

# ---- Boot 3: kernel hang ----------------------------------------------------------------------
boot 3
channel send "$shm" kernel-hang
sleep 1
h1=$(heartbeat); sleep 2; h2=$(heartbeat)
[ "$h2" = "$h1" ] || die "the heartbeat still advances after kernel-hang ($h1 -> $h2)"
say "kernel-hang: heartbeat stopped at $h2"
virsh -q destroy "$dom" >/dev/null

median=$(printf '%s\n' "${boot_times[@]}" | sort -n | sed -n 2p)
say "boot to agent ready: ${boot_times[*]} s, median $median s"
say "PASS"
