#!/usr/bin/env python3
"""Starved, not hung: false failovers while the host keeps a healthy primary from running, and
how fast a real hang is still caught, with one health policy in one run (docs/failover.md).

Brings up a pair, then per round and scenario keeps a client fetching /bytes/100000 through the
relay every 0.3 s (each body checked against Tests/tools/splitmix.py) while the host starves
the primary's QEMU:
  sigstop   SIGSTOP to the primary's QEMU for 1.5 s, then SIGCONT
  throttle  the primary's cgroup limited to 5 % of a CPU for 10 s
            (`virsh schedinfo --live global_quota=5000`), then unlimited again
  stress    `stress-ng --cpu 2` on the host for 30 s
and counts the failovers (each one false: nothing failed), the stalls the detector forgave
(`ftvm_heartbeat_stalls_forgiven_total`), the requests that failed or came back wrong, and the
largest heartbeat age seen. Then it injects kernel-hang and agent-kill `--detect` times each
and prints their detection (injection -> declared failure) as median / p95 / max.

usage: scripts/bench_starvation.py [--ftvm BIN] [--rounds N] [--detect N]
                                   [--tick-ms T] [--missed-ticks M] [--scenarios a,b]
"""
import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "Tests", "tools"))
from splitmix import stream_sha256  # noqa: E402

from benchpair import PairCLI, summary  # noqa: E402

PAIR = "starve"
SIZE = 100_000
SCENARIOS = ["sigstop", "throttle", "stress"]


class Pair(PairCLI):
    def __init__(self, binary):
        super().__init__(PAIR, binary)

    def primary(self, status):
        return next(g["domain"] for g in status["guests"] if g["role"] == "primary")

    def metric(self, status, name, domain=None):
        """The value of `name`: the largest of its series, or of the one of `domain`."""
        with urllib.request.urlopen(f"http://{status['metricsAddress']}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(name) and (domain is None or f'domain="{domain}"' in line)]
        return max(values, default=0.0)


class Client(threading.Thread):
    """Fetches one checked body every 0.3 s from the clients' namespace; beside it, samples the
    heartbeat age of the primary it started with every 50 ms."""

    def __init__(self, pair, status):
        super().__init__(daemon=True)
        self.pair, self.status = pair, status
        self.primary = pair.primary(status)
        self.url = f"http://{status['serviceAddress']}/bytes/{SIZE}?seed=7"
        self.expected = stream_sha256(SIZE, 7)
        self.ok = self.failed = self.wrong = 0
        self.age = 0.0
        self.stop = threading.Event()
        self.sampler = threading.Thread(target=self.sample_age, daemon=True)

    def sample_age(self):
        while not self.stop.wait(0.05):
            try:
                self.age = max(self.age, self.pair.metric(self.status, "ftvm_heartbeat_age_seconds", self.primary))
            except OSError:
                pass

    def run(self):
        self.sampler.start()
        while not self.stop.is_set():
            fetch = subprocess.run(
                ["ip", "netns", "exec", self.status["namespace"], "sh", "-c",
                 f"curl -sS --fail --max-time 15 '{self.url}' | sha256sum"],
                capture_output=True, text=True)
            digest = fetch.stdout.split()[0] if fetch.stdout else ""
            if fetch.returncode != 0 or "curl:" in fetch.stderr:
                self.failed += 1
            elif digest != self.expected:
                self.wrong += 1
            else:
                self.ok += 1
            self.stop.wait(0.3)
        self.sampler.join()


def qemu_pid(domain):
    with open(f"/run/libvirt/qemu/{domain}.pid") as file:
        return int(file.read().strip())


def starve(scenario, domain):
    if scenario == "sigstop":
        pid = qemu_pid(domain)
        os.kill(pid, 19)  # SIGSTOP
        try:
            time.sleep(1.5)
        finally:
            os.kill(pid, 18)  # SIGCONT
    elif scenario == "throttle":
        schedinfo = ["virsh", "-q", "schedinfo", domain, "--live"]
        subprocess.run(schedinfo + ["global_period=100000", "global_quota=5000"], check=True, capture_output=True)
        try:
            time.sleep(10)
        finally:
            # (A false failover may have removed the domain meanwhile: nothing then to undo.)
            subprocess.run(schedinfo + ["global_quota=-1"], capture_output=True)
    elif scenario == "stress":
        subprocess.run(["stress-ng", "--cpu", "2", "--timeout", "30", "--quiet"], check=True)
    else:
        sys.exit(f"unknown scenario {scenario}; known: {', '.join(SCENARIOS)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ftvm", default=os.path.join(REPO, ".build", "release", "ftvm"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detect", type=int, default=5, help="kernel-hang and agent-kill injections each")
    parser.add_argument("--tick-ms", type=int)
    parser.add_argument("--missed-ticks", type=int)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    options = parser.parse_args()
    for tool in ["stress-ng", "virsh"]:
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"{tool} is missing: run scripts/setup.sh (or apt-get install {tool})")

    pair = Pair(options.ftvm)
    up = ["up"]
    if options.tick_ms:
        up += ["--tick-ms", str(options.tick_ms)]
    if options.missed_ticks:
        up += ["--missed-ticks", str(options.missed_ticks)]
    pair.down()
    try:
        pair.ftvm(*up)
        status = pair.wait(lambda s: s["protected"], 300, "protection")
        health = status["health"]
        print(f"{options.ftvm}: tick {health['tickMillis']} ms x {health['missedTicks']} missed "
              f"(stall limit {health['tickMillis'] * health['missedTicks']} ms); accelerator {status['accelerator']}")
        print(f"{'scenario':9} {'round':>5} {'failovers':>9} {'forgiven':>8} {'ok':>4} {'failed':>6} "
              f"{'wrong':>5} {'max beat age ms':>15}")
        false_failovers = 0
        for round in range(options.rounds):
            for scenario in options.scenarios.split(","):
                status = pair.wait(lambda s: s["protected"], 300, "protection")
                recoveries = status["recoveries"]
                forgiven = pair.metric(status, "ftvm_heartbeat_stalls_forgiven_total")
                client = Client(pair, status)
                client.start()
                time.sleep(1)
                starve(scenario, pair.primary(status))
                time.sleep(3)
                client.stop.set()
                client.join()
                after = pair.status()
                failovers = after["recoveries"] - recoveries
                false_failovers += failovers
                forgiven_now = pair.metric(after, "ftvm_heartbeat_stalls_forgiven_total") if failovers == 0 else float("nan")
                print(f"{scenario:9} {round + 1:5} {failovers:9} {forgiven_now - forgiven:8.0f} {client.ok:4} "
                      f"{client.failed:6} {client.wrong:5} {client.age * 1000:15.0f}", flush=True)
                if failovers:
                    print(f"          cause: {after['lastRecovery']['cause']}")
        print(f"false failovers: {false_failovers}")

        for fault in ["kernel-hang", "agent-kill"][: 2 if options.detect else 0]:
            detect = []
            for _ in range(options.detect):
                before = pair.wait(lambda s: s["protected"], 300, "protection")["recoveries"]
                pair.ftvm("inject", fault)
                after = pair.wait(lambda s: s["recoveries"] == before + 1, 60, f"the takeover after {fault}")
                detect.append(after["lastRecovery"]["detectMillis"])
            print(f"detect {fault:12} ms: {summary(detect, count=True)}", flush=True)
    finally:
        pair.down()


if __name__ == "__main__":
    main()
