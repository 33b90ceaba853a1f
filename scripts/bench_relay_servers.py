#!/usr/bin/env python3
"""Relay servers (docs/relay-servers.md): what logging the guest's own connections costs, and how
long a recovery takes with N proxied downloads open.

Overhead: wrk on a 1 KiB answer, three ways, rounds alternating:
  backend:   the client namespace straight to Tests/tools/backend.py (no guest at all)
  proxy:     through the demo service's proxy (port 8090), with THIS relay (the proxy's
             connection to the back end is logged: its SYN/ACK, every back-end byte before the
             guest sees it, trims)
  baseline:  the same, with --baseline-ftvm (a relay that passes guest-initiated connections
             unlogged, e.g. a build of the main branch before relay servers)
  nginx:     through nginx's proxy_pass (port 8081, /proxy/), with this relay
Recovery: N paced downloads through the proxy, a kernel panic when all are in flight; the
replay's timings from `ftvm status --json`, and the back end's count (one request and one
connection per download, whatever the fault).
Load across a fault: wrk (8 threads of one keep-alive connection, a new target per request,
every answer's body checked against its seed) through the demo proxy and through nginx for 15 s,
a kernel panic 5 s in; wrk's errors and wrong answers, and how many requests the back end saw,
and saw twice (a replay must never ask the end server again).

usage: scripts/bench_relay_servers.py --image DIR [--baseline-ftvm PATH] [--rounds 2] [--seconds 10]
                                      [--counts 1,4,16] [--pair rsrv3] [--skip-overhead] [--skip-load]
"""
import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FTVM = os.path.join(REPO, ".build", "release", "ftvm")
SERVICE = "10.77.0.2"
BACKEND = "10.77.0.1:9000"
sys.path.insert(0, os.path.join(REPO, "Tests", "tools"))
from splitmix import stream_sha256  # noqa: E402
from exchanges import wrk_counts  # noqa: E402


def run(*args, check=True):
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def up(ftvm, pair, image):
    run(ftvm, "down", "--name", pair, check=False)
    run(ftvm, "up", "--name", pair, "--image", image)
    for _ in range(300):
        if ": protected" in run(ftvm, "status", "--name", pair, check=False):
            return
        time.sleep(0.2)
    sys.exit(f"pair {pair} not protected after 60 s")


def start_backend(pair, stats, count_only=False):
    process = subprocess.Popen(
        ["ip", "netns", "exec", f"ftvm-{pair}", "python3", os.path.join(REPO, "Tests", "tools", "backend.py"),
         "--listen", BACKEND, "--stats", stats] + (["--count-only"] if count_only else []), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if count_only else None)  # (wrk's closing resets)
    for _ in range(100):
        if os.path.exists(stats):
            return process
        time.sleep(0.05)
    sys.exit("the back end did not start")


def wrk(pair, url, seconds):
    out = run("ip", "netns", "exec", f"ftvm-{pair}", "wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", url)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(label):
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {"rps": rate, "p50": latency("50%"), "p99": latency("99%")}


def overhead(args, work):
    paths = {
        "backend": (FTVM, f"http://{BACKEND}/bytes/1024?seed=1"),
        "proxy": (FTVM, f"http://{SERVICE}:8090/proxy/bytes/1024?seed=1"),
        "nginx": (FTVM, f"http://{SERVICE}:8081/proxy/bytes/1024?seed=1"),
    }
    if args.baseline_ftvm:
        paths["baseline"] = (args.baseline_ftvm, paths["proxy"][1])
    results = {name: [] for name in paths}
    for round_number in range(args.rounds):
        for name, (ftvm, url) in paths.items():
            up(ftvm, args.pair, args.image)
            backend = start_backend(args.pair, os.path.join(work, f"{name}-{round_number}.json"), count_only=True)
            try:
                wrk(args.pair, url, 2)  # warm up (connections, the guest's caches)
                results[name].append(wrk(args.pair, url, args.seconds))
            finally:
                backend.terminate()
                backend.wait()
                run(ftvm, "down", "--name", args.pair, check=False)
            print(f"round {round_number + 1} {name}: {results[name][-1]}", file=sys.stderr)
    summary = {}
    for name, rounds in results.items():
        summary[name] = {key: statistics.median(r[key] for r in rounds) for key in ("rps", "p50", "p99")}
    return summary


# One target per request (a seed no other request uses, so the back end can tell a request it
# was asked twice), and each answer's first splitmix64 word checked against its seed: one
# connection per wrk thread, so a thread's answers come in its requests' order. LuaJIT's 64-bit
# cdata do the arithmetic.
CHECKED_TARGETS = """
local ffi = require("ffi")
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  sent, answered, wrong = 0, 0, 0
end

local function seed(n) return id * 1000000 + n end

function request()
  sent = sent + 1
  return wrk.format("GET", "/proxy/bytes/1024?seed=" .. seed(sent))
end

local function first_word(s)
  local z = ffi.cast("uint64_t", s) + 0x9E3779B97F4A7C15ULL
  z = bit.bxor(z, bit.rshift(z, 30)) * 0xBF58476D1CE4E5B9ULL
  z = bit.bxor(z, bit.rshift(z, 27)) * 0x94D049BB133111EBULL
  return bit.bxor(z, bit.rshift(z, 31))
end

-- wrk calls one thread's request() once more before the run, to check it: that thread's first
-- answer is then for its second seed, and all its answers are one seed on.
local skipped = nil

function response(status, headers, body)
  answered = answered + 1
  local word = 0ULL
  for i = 8, 1, -1 do word = word * 256 + (body:byte(i) or 0) end
  if skipped == nil then skipped = (word == first_word(seed(2))) and 1 or 0 end
  if status ~= 200 or #body ~= 1024 or word ~= first_word(seed(answered + skipped)) then wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("wrong") end
  io.write(string.format("wrong answers: %d\\n", total))
end
"""


def load_across_fault(args, work, name, port):
    up(FTVM, args.pair, args.image)
    stats = os.path.join(work, f"load-{name}.json")
    backend = start_backend(args.pair, stats, count_only=True)
    script = os.path.join(work, "checked.lua")
    with open(script, "w") as file:
        file.write(CHECKED_TARGETS)
    try:
        before = json.loads(run(FTVM, "status", "--name", args.pair, "--json")).get("recoveries", 0)
        load = subprocess.Popen(
            ["ip", "netns", "exec", f"ftvm-{args.pair}", "wrk", "-t8", "-c8", "-d15s", "--timeout", "10s", "-s",
             script, f"http://{SERVICE}:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(5)
        run(FTVM, "inject", "kernel-panic", "--name", args.pair, "--when-protected", "30")
        out, _ = load.communicate(timeout=120)
        time.sleep(1)  # the back end's file is written twice a second
        with open(stats) as file:
            seen = json.load(file)
        status = json.loads(run(FTVM, "status", "--name", args.pair, "--json"))
        replay = (status.get("lastRecovery") or {}).get("replay") or {}
        counts = wrk_counts(out)
        wrong = re.search(r"wrong answers: (\d+)", out)
        if not wrong:
            sys.exit(f"wrk's checking script did not run:\n{out}")
        return {
            "path": name, "wrk requests": counts["requests"], "wrk socket errors": counts["errors"],
            "non-2xx": counts["non2xx"], "wrong answers": int(wrong.group(1)),
            "backend requests": seen["requests"], "backend repeated": seen["repeated"],
            "backend connections": seen["connections"], "recoveries": status.get("recoveries", 0) - before,
            "spliced": replay.get("spliced"), "reset": replay.get("reset"), "resets": replay.get("resets"),
        }
    finally:
        backend.terminate()
        backend.wait()
        run(FTVM, "down", "--name", args.pair, check=False)


def recovery(args, work, count):
    up(FTVM, args.pair, args.image)
    stats = os.path.join(work, f"recovery-{count}.json")
    backend = start_backend(args.pair, stats)
    size = 16 << 20
    downloads = []
    try:
        for index in range(count):
            path = os.path.join(work, f"download-{count}-{index}")
            downloads.append((path, index + 1, subprocess.Popen(
                ["ip", "netns", "exec", f"ftvm-{args.pair}", "curl", "-sS", "--fail", "--max-time", "120",
                 "--limit-rate", "1M", "-o", path, f"http://{SERVICE}:8090/proxy/bytes/{size}?seed={index + 1}"])))
        deadline = time.time() + 60
        while time.time() < deadline and not all(
                os.path.exists(p) and os.path.getsize(p) >= 1 << 20 for p, _, _ in downloads):
            time.sleep(0.1)
        run(FTVM, "inject", "kernel-panic", "--name", args.pair)
        ok = 0
        for path, seed, process in downloads:
            if process.wait() == 0:
                with open(path, "rb") as data:
                    ok += hashlib.sha256(data.read()).hexdigest() == stream_sha256(size, seed)
        replay = {}
        for _ in range(300):
            status = json.loads(run(FTVM, "status", "--name", args.pair, "--json"))
            replay = (status.get("lastRecovery") or {}).get("replay") or {}
            if replay.get("enlisted") is not False and replay.get("pending", 1) == 0 and replay:
                break
            time.sleep(0.1)
        with open(stats) as file:
            seen = json.load(file)
        timings = [t["splicedMillis"] for t in replay.get("connectionTimings", [])]
        return {
            "downloads": count, "byte-exact": ok, "spliced": replay.get("spliced"), "reset": replay.get("reset"),
            "last spliced ms": replay.get("lastSplicedMillis"), "first byte ms": replay.get("firstByteMillis"),
            "slowest splice ms": max(timings) if timings else None,
            "backend connections": seen["connections"], "backend requests": len(seen["requests"]),
        }
    finally:
        for _, _, process in downloads:
            if process.poll() is None:
                process.terminate()
        backend.terminate()
        backend.wait()
        run(FTVM, "down", "--name", args.pair, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="an image built from this checkout (images/build.sh --out)")
    parser.add_argument("--baseline-ftvm", help="an ftvm whose relay does not log guest-initiated connections")
    parser.add_argument("--pair", default="rsrv3")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--counts", default="1,4,16")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftvm-bench-relay-") as work:
        report = {}
        if not args.skip_overhead:
            report["overhead"] = overhead(args, work)
        report["recovery"] = [recovery(args, work, int(count)) for count in args.counts.split(",") if count]
        if not args.skip_load:
            report["load across a fault"] = [
                load_across_fault(args, work, "proxy", 8090), load_across_fault(args, work, "nginx", 8081)]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
