#!/usr/bin/env python3
"""Failover benchmark: N injections of each fault type into a real pair, then a soak under load.

Prints, per fault: detection (injection -> declared failure) and takeover (declared failure ->
first packet from the former backup) as median / p95 / max, each takeover phase alone (fence,
switch, resume, first-packet: a regression guard for the takeover's order), plus re-protection
time; then the
number of false failovers during a soak of wrk load against the service. Every number comes from
the daemon's own phase timings (`ftvm status --json`), measured on the monotonic clock.

usage: scripts/bench_failover.py [--runs N] [--soak SECONDS] [--faults a,b,...]
"""
import argparse
import subprocess
import sys
import time

from benchpair import PairCLI, summary  # noqa: E402

PAIR = PairCLI("bench")
FAULTS = ["kernel-panic", "kernel-hang", "service-crash", "service-hang", "qemu-kill", "agent-kill"]
# The takeover's phases up to the first packet, each timed alone.
TAKEOVER_PHASES = ["fence", "switch", "resume", "first-packet"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--soak", type=int, default=300, help="seconds of load for the false-positive soak")
    parser.add_argument("--faults", default=",".join(FAULTS))
    options = parser.parse_args()

    PAIR.down()
    try:
        PAIR.ftvm("up")
        health = PAIR.status()["health"]
        print(f"pair up; health policy: tick {health['tickMillis']} ms, {health['missedTicks']} missed ticks, "
              f"grace {health['graceMillis']} ms; accelerator {PAIR.status()['accelerator']}")
        results = {}
        for fault in options.faults.split(","):
            detect, takeover, reprotect = [], [], []
            alone = {name: [] for name in TAKEOVER_PHASES}
            for _ in range(options.runs):
                before = PAIR.wait(lambda s: s["protected"], 120, "protection")["recoveries"]
                PAIR.ftvm("inject", fault)
                after = PAIR.wait(lambda s: s["recoveries"] == before + 1, 60, f"takeover after {fault}")
                record = after["lastRecovery"]
                if record.get("error"):
                    sys.exit(f"{fault}: recovery error: {record['error']}")
                detect.append(record["detectMillis"])
                phases = {p["name"]: p for p in record["phases"]}
                takeover.append(phases["first-packet"]["sinceDetectionMillis"])
                for name in TAKEOVER_PHASES:
                    alone[name].append(phases[name]["millis"])
                done = PAIR.wait(lambda s: s["protected"] and s["lastRecovery"]["reprotected"], 120, "re-protection")
                phases = {p["name"]: p for p in done["lastRecovery"]["phases"]}
                reprotect.append(phases["re-protected"]["sinceDetectionMillis"])
            results[fault] = (detect, takeover, reprotect, alone)

        print(f"\n{options.runs} injections per fault; milliseconds")
        print(f"{'fault':14} {'what':10} {'':>10}")
        for fault, (detect, takeover, reprotect, alone) in results.items():
            print(f"{fault:14} detect     {summary(detect, width=8)}")
            print(f"{'':14} takeover   {summary(takeover, width=8)}")
            for name, values in alone.items():
                print(f"{'':14}  {name:13} {summary(values, width=8)}")
            print(f"{'':14} reprotect  {summary(reprotect, width=8)}")

        if options.soak > 0:
            soak(options.soak)
    finally:
        PAIR.down()


def soak(seconds):
    current = PAIR.wait(lambda s: s["protected"], 120, "protection")
    before = current["recoveries"]
    ns, address = current["namespace"], current["serviceAddress"]
    print(f"\nsoak: {seconds} s of wrk (2 threads, 64 connections, /bytes/65536) plus repeated 32 MB "
          f"downloads and uploads, against {address}")
    wrk = subprocess.Popen(
        ["ip", "netns", "exec", ns, "wrk", "-t2", "-c64", f"-d{seconds}s", f"http://{address}/bytes/65536?seed=3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + seconds
    bulk = 0
    while time.monotonic() < deadline:
        subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "-o", "/dev/null", "--max-time", "60",
                        f"http://{address}/bytes/33554432?seed={bulk}"], capture_output=True)
        bulk += 1
    output, _ = wrk.communicate()
    after = PAIR.status()["recoveries"]
    requests = [line for line in output.splitlines() if "requests in" in line or "Requests/sec" in line]
    print("wrk: " + " | ".join(line.strip() for line in requests))
    print(f"bulk downloads during the soak: {bulk}")
    print(f"false failovers during the soak: {after - before}")
    if after != before:
        sys.exit(1)


if __name__ == "__main__":
    main()
