#!/usr/bin/env bash
# The ftvm demo: a protected service, a client download through the client namespace checked
# byte for byte against an independent computation, an injected fault (a real guest kernel
# panic), the takeover by the backup with its phase timings, the service again from the former
# backup, and a verdict. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
ftvm=.build/release/ftvm
name=demo
size=${FTVM_DEMO_BYTES:-16777216}
seed=${FTVM_DEMO_SEED:-42}

cleanup() { "$ftvm" down --name "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$ftvm" down --name "$name" >/dev/null 2>&1 || true

"$ftvm" up --name "$name"
ns=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["namespace"])')
addr=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serviceAddress"])')
echo
virsh -c qemu:///system list --all
fault=${FTVM_DEMO_FAULT:-kernel-panic}

# Downloads /bytes/$size?seed=$1 through the namespace and compares it with the reference.
download() {
  local seed=$1 start end got want
  start=$(date +%s.%N)
  got=$(ip netns exec "$ns" curl -sS --fail --max-time 600 "http://$addr/bytes/$size?seed=$seed" | sha256sum | cut -d' ' -f1)
  end=$(date +%s.%N)
  want=$(python3 Tests/tools/splitmix.py "$size" "$seed")
  echo "demo: got  sha256 $got"
  echo "demo: want sha256 $want (independent Python splitmix64)"
  python3 -c "print('demo: %.1f MB/s' % ($size / 1e6 / ($end - $start)))"
  [ "$got" = "$want" ]
}

verdict=PASS
echo "demo: downloading $size bytes (seed $seed) from http://$addr/bytes/$size?seed=$seed in netns $ns"
download "$seed" || verdict=FAIL

recoveries=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["recoveries"])')
echo
"$ftvm" inject "$fault" --name "$name"
for _ in $(seq 1 600); do
  now=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["recoveries"], s["protected"])')
  [ "$now" = "$((recoveries + 1)) True" ] && break
  sleep 0.1
done
"$ftvm" status --name "$name"
echo
virsh -c qemu:///system list --all
echo "demo: downloading again, now from the former backup"
download "$((seed + 1))" || verdict=FAIL

if [ "$verdict" = PASS ] && [ "$now" = "$((recoveries + 1)) True" ]; then
  echo "VERDICT: PASS - byte-exact service before and after a $fault, the pair protected again"
else
  echo "VERDICT: FAIL - see the output above"
  exit 1
fi
