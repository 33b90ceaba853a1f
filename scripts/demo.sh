#!/usr/bin/env bash
# The ftvm demo: a protected service; a client download through the client namespace, slowed so
# that a real fault (a guest kernel panic) lands in the middle of it; the takeover by the backup,
# which replays the open connection; the same download finishing on the same TCP connection,
# checked byte for byte against an independent computation; and a verdict. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
ftvm=.build/release/ftvm
name=demo
size=${FTVM_DEMO_BYTES:-67108864}
seed=${FTVM_DEMO_SEED:-42}
rate=${FTVM_DEMO_RATE:-16M}
fault=${FTVM_DEMO_FAULT:-kernel-panic}

cleanup() { "$ftvm" down --name "$name" >/dev/null 2>&1 || true; rm -f "${out:-}"; }
trap cleanup EXIT
"$ftvm" down --name "$name" >/dev/null 2>&1 || true

"$ftvm" up --name "$name"
ns=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["namespace"])')
addr=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serviceAddress"])')
echo
virsh -c qemu:///system list --all
recoveries=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["recoveries"])')

echo
echo "demo: downloading $size bytes from http://$addr/bytes/$size?seed=$seed in netns $ns at $rate/s"
out=$(mktemp)
ip netns exec "$ns" curl -sS --fail --max-time 600 --limit-rate "$rate" -w 'demo: curl used local port %{local_port}, %{num_connects} connection(s), %{size_download} bytes\n' \
  -o "$out" "http://$addr/bytes/$size?seed=$seed" &
client=$!
sleep 1.5
echo "demo: $(stat -c %s "$out") bytes received so far; injecting $fault into the primary"
"$ftvm" inject "$fault" --name "$name"
verdict=PASS
wait "$client" || { echo "demo: the download failed"; verdict=FAIL; }
got=$(sha256sum "$out" | cut -d' ' -f1)
want=$(python3 Tests/tools/splitmix.py "$size" "$seed")
echo "demo: got  sha256 $got"
echo "demo: want sha256 $want (independent Python splitmix64)"
[ "$got" = "$want" ] || verdict=FAIL

for _ in $(seq 1 600); do
  now=$("$ftvm" status --name "$name" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["recoveries"], s["protected"])')
  [ "$now" = "$((recoveries + 1)) True" ] && break
  sleep 0.1
done
echo
"$ftvm" status --name "$name"
echo
virsh -c qemu:///system list --all

if [ "$verdict" = PASS ] && [ "$now" = "$((recoveries + 1)) True" ]; then
  echo "VERDICT: PASS - the download survived a $fault byte-exact on its original connection; the pair is protected again"
else
  echo "VERDICT: FAIL - see the output above"
  exit 1
fi
