#!/usr/bin/env python3
"""Overhead of the ftvm relay (with the FT-TCP connection log) against the direct path.

The same image and service are measured side by side in one run:
  relay:  a protected pair (`ftvm up`): client netns -> tap -> ftvm relay + log -> UDP -> QEMU
  direct: one more guest from the same image, started by plain QEMU on a tap that is moved into
          its own client netns: client netns -> tap -> QEMU. No relay, no log.
Rounds alternate between the paths so drift on the busy 2-core machine hits both alike. Each
round: bulk downloads (throughput) and wrk on a small response (requests/s, p50 and p99 latency).

usage: scripts/bench_overhead.py [--rounds N] [--seconds S]
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FTVM = os.path.join(REPO, ".build", "release", "ftvm")  # built by scripts/prepare.sh
IMAGE = "/var/lib/ftvm/images/default"
PAIR = "ovh"
DIRECT_NS = "ftvm-direct"
DIRECT_TAP = "ftvmdirect"
DIRECT_SHM = "/dev/shm/ftvm-direct-chan"
DIRECT_CONSOLE = "/tmp/ftvm-direct.console"
ADDRESS = "10.77.0.2"
BULK = 64 << 20
MTU = 65000  # PairConfig.mtu: both paths run the guest with the same link MTU


def run(*args, check=True):
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def format_channel(path):
    """The header the agent checks (Sources/FTVMChannel/ChannelLayout.swift): magic, version, size."""
    size = 1 << 20
    with open(path, "wb") as region:
        region.write(struct.pack("<8sII", b"FTVMCHAN", 1, size))
        region.truncate(size)
    os.chmod(path, 0o666)


def start_direct():
    format_channel(DIRECT_SHM)
    run("ip", "netns", "add", DIRECT_NS)
    run("ip", "tuntap", "add", "dev", DIRECT_TAP, "mode", "tap")
    if os.path.exists(DIRECT_CONSOLE):
        os.remove(DIRECT_CONSOLE)
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-cpu", "qemu64", "-m", "256", "-smp", "1",
        "-display", "none", "-monitor", "none", "-no-reboot", "-serial", f"file:{DIRECT_CONSOLE}",
        "-kernel", f"{IMAGE}/vmlinuz", "-initrd", f"{IMAGE}/initrd.img",
        "-append", f"console=ttyS0 panic=0 quiet ftvm.ip={ADDRESS}/24 ftvm.gw=10.77.0.1 ftvm.mtu={MTU}",
        "-netdev", f"tap,id=n0,ifname={DIRECT_TAP},script=no,downscript=no",
        "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02",
        "-object", f"memory-backend-file,id=chan,share=on,mem-path={DIRECT_SHM},size=1M",
        "-device", "ivshmem-plain,memdev=chan", "-device", "virtio-rng-pci", "-device", "pvpanic",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    # QEMU holds the tap open; move it to the clients' namespace (the host never gets an address).
    run("ip", "link", "set", DIRECT_TAP, "netns", DIRECT_NS)
    run("ip", "-n", DIRECT_NS, "link", "set", "lo", "up")
    run("ip", "-n", DIRECT_NS, "addr", "add", "10.77.0.1/24", "dev", DIRECT_TAP)
    run("ip", "-n", DIRECT_NS, "link", "set", DIRECT_TAP, "mtu", str(MTU), "up")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if os.path.exists(DIRECT_CONSOLE) and "ftvm-agent: ready" in open(DIRECT_CONSOLE, errors="replace").read():
            return qemu
        time.sleep(0.2)
    qemu.kill()
    sys.exit(f"the direct guest did not become ready; see {DIRECT_CONSOLE}")


def stop_direct(qemu):
    if qemu and qemu.poll() is None:
        qemu.kill()
        qemu.wait()
    subprocess.run(["ip", "netns", "del", DIRECT_NS], capture_output=True)
    subprocess.run(["ip", "link", "del", DIRECT_TAP], capture_output=True)
    if os.path.exists(DIRECT_SHM):
        os.remove(DIRECT_SHM)


def bulk(ns, seed):
    start = time.monotonic()
    out = run("bash", "-c", f"ip netns exec {ns} curl -sS --fail --max-time 300 'http://{ADDRESS}/bytes/{BULK}?seed={seed}' | sha256sum")
    elapsed = time.monotonic() - start
    want = run("python3", os.path.join(REPO, "Tests/tools/splitmix.py"), str(BULK), str(seed)).strip()
    if out[:64] != want:
        sys.exit(f"bulk download through {ns} was not byte-exact")
    return BULK / 1e6 / elapsed


def upload(ns, path):
    start = time.monotonic()
    digest = run("ip", "netns", "exec", ns, "curl", "-sS", "--fail", "--max-time", "300", "--data-binary", f"@{path}",
                 f"http://{ADDRESS}/sha256").strip()
    elapsed = time.monotonic() - start
    if digest != run("sha256sum", path)[:64]:
        sys.exit(f"upload through {ns} was not byte-exact")
    return os.path.getsize(path) / 1e6 / elapsed


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(ns, seconds):
    out = run("ip", "netns", "exec", ns, "wrk", "-t2", "-c16", f"-d{seconds}s", "--latency",
              f"http://{ADDRESS}/bytes/1024?seed=1")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    return rps, p50, p99


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    options = parser.parse_args()
    qemu = None
    subprocess.run([FTVM, "down", "--name", PAIR], capture_output=True)
    stop_direct(None)
    try:
        run(FTVM, "up", "--name", PAIR)
        relay_ns = json.loads(run(FTVM, "status", "--name", PAIR, "--json"))["namespace"]
        qemu = start_direct()
        paths = {"relay": relay_ns, "direct": DIRECT_NS}
        results = {name: {"bulk": [], "upload": [], "rps": [], "p50": [], "p99": []} for name in paths}
        body = f"/tmp/ftvm-bench-upload-{os.getpid()}"
        with open(body, "wb") as file:
            file.write(os.urandom(32 << 20))
        for round_number in range(options.rounds):
            for name, ns in paths.items():
                results[name]["bulk"].append(bulk(ns, 100 + round_number))
                results[name]["upload"].append(upload(ns, body))
                rps, p50, p99 = load(ns, options.seconds)
                results[name]["rps"].append(rps)
                results[name]["p50"].append(p50)
                results[name]["p99"].append(p99)
                print(f"round {round_number + 1} {name:6}: download {results[name]['bulk'][-1]:6.1f} MB/s, "
                      f"upload {results[name]['upload'][-1]:6.1f} MB/s, "
                      f"{rps:7.0f} req/s, p50 {p50:6.2f} ms, p99 {p99:6.2f} ms", flush=True)
        log = json.loads(run(FTVM, "status", "--name", PAIR, "--json"))["log"]
        print(f"\nmedians over {options.rounds} rounds (MTU {MTU}; {BULK >> 20} MiB downloads, 32 MiB uploads; load: wrk -t2 -c16 "
              f"-d{options.seconds}s on /bytes/1024)")
        print(f"{'':18}{'relay':>10}{'direct':>10}{'relay/direct':>14}")
        os.remove(body)
        for key, label in [("bulk", "download MB/s"), ("upload", "upload MB/s"), ("rps", "requests/s"), ("p50", "p50 latency ms"), ("p99", "p99 latency ms")]:
            relay = statistics.median(results["relay"][key])
            direct = statistics.median(results["direct"][key])
            print(f"{label:18}{relay:10.2f}{direct:10.2f}{relay / direct:14.3f}")
        print(f"\nconnections logged by the relay during the run: {log['connectionsLogged']}, "
              f"bytes logged: {log['bytesLogged']}, full-log drops: {log['fullDrops']}")
    finally:
        stop_direct(qemu)
        subprocess.run([FTVM, "down", "--name", PAIR], capture_output=True)


if __name__ == "__main__":
    main()
