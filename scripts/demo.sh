#!/usr/bin/env bash
# The ftvm demo: a protected service, a client download through the client namespace, checked
# byte for byte against an independent computation, and a verdict. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
ftvm=.build/debug/ftvm
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
echo "demo: downloading $size bytes (seed $seed) from http://$addr/bytes/$size?seed=$seed in netns $ns"
start=$(date +%s.%N)
got=$(ip netns exec "$ns" curl -sS --fail --max-time 600 "http://$addr/bytes/$size?seed=$seed" | sha256sum | cut -d' ' -f1)
end=$(date +%s.%N)
want=$(python3 Tests/tools/splitmix.py "$size" "$seed")
echo "demo: got  sha256 $got"
echo "demo: want sha256 $want (independent Python splitmix64)"
python3 -c "print('demo: %.1f MB/s' % ($size / 1e6 / ($end - $start)))"
if [ "$got" = "$want" ]; then
  echo "VERDICT: PASS - the download through ftvm is byte-exact"
else
  echo "VERDICT: FAIL - the download differs from the reference"
  exit 1
fi
