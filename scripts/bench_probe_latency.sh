#!/usr/bin/env bash
# How long the demo service takes to answer `GET /` (the agent's liveness probe's request) while
# 16 unpaced downloads keep it busy, seen from the clients' namespace of a running pair. Prints
# the latencies and the rate of one more download alongside; run by hand (docs/failover.md).
# Usage: scripts/bench_probe_latency.sh PAIR   (after `ftvm up --name PAIR`)
set -euo pipefail
pair=${1:?usage: $0 PAIR}
namespace=ftvm-$pair
address=10.77.0.2
downloads=()
trap 'kill "${downloads[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for seed in $(seq 1 16); do
  ip netns exec "$namespace" curl -s -o /dev/null "http://$address/bytes/400000000?seed=$seed" &
  downloads+=($!)
done
sleep 3
for _ in $(seq 1 20); do
  ip netns exec "$namespace" curl -s -o /dev/null -w '%{time_total}\n' --max-time 10 "http://$address/"
  sleep 0.3
done | sort -n | awk '{ t[NR] = $1 } END { printf "GET / seconds: min %s median %s max %s (%d requests)\n", t[1], t[int(NR / 2) + 1], t[NR], NR }'
ip netns exec "$namespace" curl -s -o /dev/null --max-time 8 -w 'a 17th download alongside: %{speed_download} B/s\n' \
  "http://$address/bytes/400000000?seed=99" || true
