#!/usr/bin/env bash
# Boots a built guest image directly with qemu-system-x86_64 (no libvirt) and reports how many
# seconds pass from starting QEMU until a console line appears; then kills that QEMU (by PID) and
# removes its shared-memory file.
#
#   images/test-boot.sh [options] OUTDIR
#     --wait TEXT     console text to wait for (default "ftvm-agent: ready"; with a stub agent that
#                     does not speak the channel, use "ftvm-init: network up")
#     --runs N        boot N times one after another; print each time and the median (default 1)
#     --timeout SEC   give up on a run after SEC seconds (default 180)
#     --ip ADDR/LEN   the guest address passed as ftvm.ip= (default 10.77.0.2/24)
#     --append TEXT   more kernel command line (e.g. "ftvm.debug=1" or "quiet")
#     --nic KIND      isolated (default): a virtio-net NIC on a QEMU hub with no other port, so
#                       eth0 exists but no frame leaves QEMU;
#                     none: no NIC at all (/init then reports that it has no eth0);
#                     user: restricted user-mode networking (no route out of QEMU), for --hostfwd
#     --hostfwd H:G   forward 127.0.0.1:H on the host to guest port G (implies --nic user)
#     --then CMD      run CMD (bash -c) on the host once the line appeared, before QEMU is killed;
#                     a failing CMD fails the run. $FTVM_TEST_LOG names the console log.
#     --log FILE      keep the console log of the last run in FILE
#     --qemu-arg ARG  pass ARG to QEMU as well (repeatable), e.g. --qemu-arg -device
#                     --qemu-arg virtio-rng-pci
#     --raw-channel   leave the ivshmem region zeroed (default: format the channel header the way
#                     the host daemon does, so the real agent attaches and reports ready)
#
# Exit status: 0 when every run saw the line; 1 otherwise (the console log's tail is printed).
set -euo pipefail

prog=images/test-boot.sh
die() { echo "$prog: error: $*" >&2; exit 2; }

wait_for="ftvm-agent: ready" runs=1 timeout=180 ip=10.77.0.2/24 append="" nic=isolated
hostfwd=() extra=() then_cmd="" keep_log="" raw_channel=0 dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wait) wait_for=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --ip) ip=$2; shift 2 ;;
    --append) append="$append $2"; shift 2 ;;
    --nic) nic=$2; shift 2 ;;
    --hostfwd) hostfwd+=("$2"); nic=user; shift 2 ;;
    --then) then_cmd=$2; shift 2 ;;
    --log) keep_log=$2; shift 2 ;;
    --qemu-arg) extra+=("$2"); shift 2 ;;
    --raw-channel) raw_channel=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$dir" ] || die "one OUTDIR only"; dir=$1; shift ;;
  esac
done
[ -n "$dir" ] || die "usage: $prog [options] OUTDIR (see --help)"
for f in vmlinuz initrd.img; do [ -r "$dir/$f" ] || die "$dir/$f is missing or unreadable"; done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"

shm=/dev/shm/ftvm-imgtest-$$
log=$(mktemp /tmp/ftvm-imgtest-$$.XXXXXX.log)
qemu_pid=""
stop_qemu() {
  if [ -n "$qemu_pid" ]; then
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
  fi
  rm -f "$shm"
}
cleanup() {
  stop_qemu
  if [ -n "$keep_log" ]; then cp "$log" "$keep_log"; fi
  rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

netargs=(-nic none)
case "$nic" in
  none) ;;
  isolated) # shellcheck disable=SC2054
    netargs+=(-netdev hubport,id=n0,hubid=0 -device virtio-net-pci,netdev=n0) ;;
  user)
    addr=${ip%/*}
    net=${addr%.*}.0/24
    user="user,id=n0,restrict=on,net=$net,host=${addr%.*}.1"
    for fwd in "${hostfwd[@]}"; do
      [[ "$fwd" =~ ^[0-9]+:[0-9]+$ ]] || die "--hostfwd wants HOSTPORT:GUESTPORT, not $fwd"
      user+=",hostfwd=tcp:127.0.0.1:${fwd%%:*}-$addr:${fwd##*:}"
    done
    # shellcheck disable=SC2054
    netargs+=(-netdev "$user" -device virtio-net-pci,netdev=n0) ;;
  *) die "--nic must be isolated, none or user" ;;
esac

make_channel() {
  rm -f "$shm"
  truncate -s 1M "$shm"
  if [ "$raw_channel" = 0 ]; then
    # The header FTVMChannel's Channel(formatting:) writes (Sources/FTVMChannel/ChannelLayout.swift):
    # magic "FTVMCHAN" (UInt64 LE at 0), layout version 2 (UInt32 at 8), region size (UInt32 at 12).
    printf 'FTVMCHAN\002\000\000\000\000\000\020\000' | dd of="$shm" conv=notrunc status=none
  fi
}

boot_once() { # run number; prints the seconds on success
  local run=$1 start now elapsed
  make_channel
  : >"$log"
  start=$(date +%s.%N)
  qemu-system-x86_64 -accel tcg -m 256 -nographic -no-reboot \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" \
    -append "console=ttyS0 panic=0 ftvm.ip=$ip$append" \
    "${netargs[@]}" \
    -object "memory-backend-file,id=chan,share=on,mem-path=$shm,size=1M" \
    -device ivshmem-plain,memdev=chan \
    -device pvpanic \
    ${extra[@]+"${extra[@]}"} \
    </dev/null >"$log" 2>&1 &
  qemu_pid=$!
  while :; do
    if grep -q -F -- "$wait_for" "$log"; then
      now=$(date +%s.%N)
      break
    fi
    if ! kill -0 "$qemu_pid" 2>/dev/null; then
      echo "$prog: run $run: QEMU exited before '$wait_for' appeared; console tail:" >&2
      tail -n 30 "$log" | tr -d '\r' >&2
      return 1
    fi
    now=$(date +%s.%N)
    if awk -v a="$start" -v b="$now" -v t="$timeout" 'BEGIN { exit !(b - a > t) }'; then
      echo "$prog: run $run: no '$wait_for' within ${timeout}s; console tail:" >&2
      tail -n 30 "$log" | tr -d '\r' >&2
      return 1
    fi
    sleep 0.05
  done
  elapsed=$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.2f", b - a }')
  local guest
  guest=$(tr -d '\r' <"$log" | sed -n 's/^ftvm-init: network up .* at \([0-9.]*\)$/\1/p' | head -n 1)
  if [ -n "$then_cmd" ]; then
    if ! FTVM_TEST_LOG=$log bash -c "$then_cmd"; then
      echo "$prog: run $run: --then command failed" >&2
      stop_qemu
      return 1
    fi
  fi
  stop_qemu
  echo "run $run: ${elapsed} s until '$wait_for'${guest:+ (guest uptime at network up: ${guest} s)}"
  times+=("$elapsed")
}

times=()
for run in $(seq 1 "$runs"); do
  boot_once "$run" || exit 1
done
if [ "$runs" -gt 1 ]; then
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  echo "median of $runs runs: $median s (min $(printf '%s\n' "${times[@]}" | sort -n | head -n 1), max $(printf '%s\n' "${times[@]}" | sort -n | tail -n 1))"
fi
