#!/usr/bin/env bash
# One fault, again and again, under ReplayTests' mixed workload (16 downloads of 1-64 MB paced
# until the fault, then unpaced; a 16 MiB upload; a keep-alive session; a static file; a /random
# download that must be reset): each round checks what ReplayTests checks, on a pair of its own.
# Found the close fence letting a killed service's FINs go (docs/replay.md, "The close fence").
# Run by hand, not in CI: about 30 s a round.
#
# usage: scripts/fault_loop.sh [--fault F] [--rounds N] [--ftvm PATH] [--name PAIR]
#   prints one line per round: OK, or BAD and why (the workload's failures, no new recovery,
#   more than one recovery, or no reset of /random); the daemon's log names the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
fault=service-crash rounds=20 ftvm=.build/release/ftvm name=loop
while [ $# -gt 0 ]; do
  case $1 in
    --fault) fault=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --ftvm) ftvm=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    *) echo "usage: $0 [--fault F] [--rounds N] [--ftvm PATH] [--name PAIR]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap '"$ftvm" down --name "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
blob=$(sha256sum /var/lib/ftvm/images/default/www/blob.bin | cut -c1-64)
"$ftvm" down --name "$name" >/dev/null 2>&1 || true
"$ftvm" up --name "$name" >/dev/null
status() { "$ftvm" status --name "$name" --json; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
bad_rounds=0
for round in $(seq "$rounds"); do
  until [ "$(status | field phase)" = protected ]; do sleep 0.5; done
  before=$(status | field recoveries)
  fraction=$(python3 -c "import random; print('%.3f' % random.uniform(0.03, 0.4))")
  ip netns exec "ftvm-$name" python3 Tests/tools/workload.py mix --host 10.77.0.2 --timeout 240 \
    --count 16 --sizes 1M:64M --seed "$RANDOM" --pace-until-trigger 2M --upload-size 16M \
    --keepalive-requests 8 --static-path /blob.bin --static-sha256 "$blob" --random-size 64M \
    --trigger "$fraction:$ftvm inject $fault --name $name --when-protected 30" \
    >"$work/report.json" 2>"$work/workload.log" || true
  sleep 1
  status >"$work/status.json"
  verdict=$(python3 - "$work" "$before" <<'PY'
import json, sys
work, before = sys.argv[1], int(sys.argv[2])
lines = open(f"{work}/report.json").read().strip().splitlines()
report = json.loads(lines[-1]) if lines else {}
status = json.load(open(f"{work}/status.json"))
recovery = status.get("lastRecovery") or {}
bad = []
if not report.get("ok"):
    bad.append(f"workload: {report.get('failures', 'no report')}")
if status["recoveries"] != before + 1:
    bad.append(f"{status['recoveries'] - before} recoveries, the last: {recovery.get('cause')}")
elif not (recovery.get("replay") or {}).get("resets"):
    bad.append("no reset (the /random connection was not in the replay)")
print("OK" if not bad else "BAD " + "; ".join(bad))
PY
)
  echo "round $round ($fault at $fraction): $verdict"
  case $verdict in BAD*) bad_rounds=$((bad_rounds + 1)) ;; esac
done
echo "$bad_rounds bad of $rounds rounds"
[ "$bad_rounds" -eq 0 ]
