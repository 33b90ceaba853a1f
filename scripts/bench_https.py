#!/usr/bin/env python3
"""HTTPS through ftvm's terminator (docs/https.md) against TLS terminated in the guest, in one run.

One protected pair from the demo image, with `--tls-port 443:8081` (HAProxy on the host, the
image's nginx serving plain HTTP on 8081). The same nginx also terminates TLS itself on 8444 (the
image's own benchmark certificate): that is the in-guest baseline, through the same relay and log
to the same guest, so the only difference is where TLS runs. Plain HTTP on 8081 is shown too.
Rounds alternate between the paths so drift on the busy machine hits all alike. Each round and
path: handshakes/s (wrk, 4 connections, `Connection: close`: one TLS handshake per request),
keep-alive requests/s (wrk, 8 connections), and a 4 MiB download (curl, checked byte for byte),
and any failover the load itself caused (a guest too busy to answer its health probes).

Then, through the terminator only:
  idle sessions: N TLS sessions opened and left idle; HAProxy's resident memory per session.
  panic:         100 keep-alive HTTPS sessions making requests across a kernel panic; requests
                 failed, sessions that reconnected, and the recovery's phases.

usage: scripts/bench_https.py [--rounds N] [--seconds S] [--idle N] [--name PAIR] [--json]
Run by hand (it takes minutes); the figures go to docs/https.md.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FTVM = os.path.join(REPO, ".build", "release", "ftvm")
ADDRESS = "10.77.0.2"
# 4 MiB: a bigger download over TLS in the guest keeps its one nginx worker encrypting for
# so long under TCG that the agent's liveness probe fails it (a false failover; docs/https.md).
BULK_PATH = "/blob.bin"
# What the image's nginx serves, as images/build.sh wrote it.
BULK_FILE = "/var/lib/ftvm/images/default/www/blob.bin"
PATHS = {
    "terminator": f"https://{ADDRESS}:443",
    "in-guest": f"https://{ADDRESS}:8444",
    "plain": f"http://{ADDRESS}:8081",
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(arguments, check=True):
    result = subprocess.run(arguments, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result


def inside(name, arguments, check=True):
    return run(["ip", "netns", "exec", f"ftvm-{name}"] + arguments, check=check)


def make_certificate(directory):
    """A CA and a P-256 certificate for ADDRESS (the same curve as the image's own)."""
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509"] + curve + ["-keyout", f"{directory}/ca.key", "-out", f"{directory}/ca.pem",
                                               "-days", "2", "-subj", "/CN=bench CA"])
    run(["openssl", "req"] + curve + ["-keyout", f"{directory}/key.pem", "-out", f"{directory}/req.csr",
                                      "-subj", f"/CN={ADDRESS}"])
    with open(f"{directory}/ext", "w") as ext:
        ext.write(f"subjectAltName=IP:{ADDRESS}\n")
    run(["openssl", "x509", "-req", "-in", f"{directory}/req.csr", "-CA", f"{directory}/ca.pem", "-CAkey",
         f"{directory}/ca.key", "-CAcreateserial", "-out", f"{directory}/cert.pem", "-days", "2", "-extfile",
         f"{directory}/ext"])
    os.chmod(f"{directory}/key.pem", 0o600)


def wrk(name, url, seconds, connections, close):
    """requests/s and errors of wrk on url."""
    arguments = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if close:
        arguments += ["-H", "Connection: close"]
    output = inside(name, arguments + [url]).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    # With Connection: close, the server's close after each answer is counted as a read error.
    counted = [int(errors.group(g)) for g in ((1, 3, 4) if close else (1, 2, 3, 4))] if errors else []
    return float(rate.group(1)) if rate else 0.0, sum(counted) + (int(non2xx.group(1)) if non2xx else 0)


def download(name, url, cafile):
    """MB/s of one download of the image's blob.bin, checked byte for byte."""
    with tempfile.NamedTemporaryFile() as target:
        # (The in-guest path has the image's own certificate, which no CA here signed.)
        trust = ["-k"] if ":8444" in url else ["--cacert", cafile] if url.startswith("https") else []
        output = inside(name, ["curl", "-sS", "--fail"] + trust + ["-o", target.name, "-w", "%{speed_download}",
                                                                   url + BULK_PATH]).stdout
        digest = hashlib.sha256(open(target.name, "rb").read()).hexdigest()
    if digest != hashlib.sha256(open(BULK_FILE, "rb").read()).hexdigest():
        raise SystemExit(f"{url}{BULK_PATH}: wrong bytes")
    return float(output) / 1e6


def status(name):
    return json.loads(run([FTVM, "status", "--name", name, "--json"]).stdout)


def wait_protected(name):
    for _ in range(600):
        if status(name)["protected"]:
            return
        time.sleep(0.2)
    raise SystemExit(f"{name} is not protected again after 120 s")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


IDLE_CLIENT = r"""
import socket, ssl, sys, time
context = ssl.create_default_context(cafile=sys.argv[2])
sessions = []
for _ in range(int(sys.argv[1])):
    raw = socket.create_connection((sys.argv[3], 443))
    sessions.append(context.wrap_socket(raw, server_hostname=sys.argv[3]))
print("open", flush=True)
sys.stdin.readline()
"""


def idle_sessions(name, count, cafile, pid):
    before = rss_kib(pid)
    client = subprocess.Popen(["ip", "netns", "exec", f"ftvm-{name}", "python3", "-c", IDLE_CLIENT, str(count),
                               cafile, ADDRESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if client.stdout.readline().strip() != "open":
        raise SystemExit("the idle sessions could not be opened")
    time.sleep(1)
    after = rss_kib(pid)
    client.stdin.write("\n")
    client.stdin.close()
    client.wait()
    return {"sessions": count, "haproxy_rss_before_kib": before, "haproxy_rss_after_kib": after,
            "kib_per_session": round((after - before) / count, 2)}


PANIC_CLIENT = r"""
import http.client, json, ssl, sys, threading, time
count, cafile, host, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
context = ssl.create_default_context(cafile=cafile)
results = []
lock = threading.Lock()
def session():
    connection = http.client.HTTPSConnection(host, 443, context=context, timeout=60)
    connection.connect()
    first = connection.sock
    done = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            connection.request("GET", "/index.html")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                done += 1
            else:
                failed += 1
        except Exception:
            failed += 1
        time.sleep(0.1)
    with lock:
        results.append((done, failed, connection.sock is not first))
threads = [threading.Thread(target=session) for _ in range(count)]
for thread in threads:
    thread.start()
print("running", flush=True)
for thread in threads:
    thread.join()
print(json.dumps({"sessions": count, "requests": sum(r[0] for r in results),
                  "failed": sum(r[1] for r in results), "reconnected": sum(1 for r in results if r[2])}))
"""


def panic(name, cafile):
    before = json.loads(run([FTVM, "status", "--name", name, "--json"]).stdout).get("lastRecovery")
    client = subprocess.Popen(["ip", "netns", "exec", f"ftvm-{name}", "python3", "-c", PANIC_CLIENT, "100", cafile,
                               ADDRESS, "25"], stdout=subprocess.PIPE, text=True)
    client.stdout.readline()
    time.sleep(8)
    run([FTVM, "inject", "kernel-panic", "--name", name])
    report = json.loads(client.stdout.read().strip().splitlines()[-1])
    client.wait()
    for _ in range(300):
        recovery = json.loads(run([FTVM, "status", "--name", name, "--json"]).stdout).get("lastRecovery")
        if recovery and recovery.get("replay") and recovery != before:
            break
        time.sleep(0.1)
    report["phases_ms"] = {phase["name"]: round(phase["millis"], 2) for phase in recovery.get("phases", [])} \
        if isinstance(recovery.get("phases"), list) else recovery.get("phases")
    replay = recovery.get("replay") or {}
    report["replay"] = {key: replay.get(key) for key in ("connections", "spliced", "reset", "lastSplicedMillis",
                                                         "firstByteMillis")}
    return report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--name", default="bhttps")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    name = arguments.name
    directory = tempfile.mkdtemp(prefix="ftvm-bench-https-")
    make_certificate(directory)
    cafile = f"{directory}/ca.pem"
    run([FTVM, "down", "--name", name], check=False)
    try:
        log(f"bench_https: bringing up {name}")
        run([FTVM, "up", "--name", name, "--tls-port", "443:8081", "--tls-cert", f"{directory}/cert.pem",
             "--tls-key", f"{directory}/key.pem"])
        figures = {path: {"handshakes_per_s": [], "rps": [], "download_mbps": [], "errors": 0, "failovers": 0}
                   for path in PATHS}
        for round_ in range(arguments.rounds):
            for path, url in PATHS.items():
                recoveries = status(name)["recoveries"]
                handshakes, errors_close = wrk(name, url + "/index.html", arguments.seconds, 4, close=True)
                rps, errors_keep = wrk(name, url + "/index.html", arguments.seconds, 8, close=False)
                mbps = download(name, url, cafile)
                entry = figures[path]
                entry["handshakes_per_s"].append(handshakes)
                entry["rps"].append(rps)
                entry["download_mbps"].append(mbps)
                entry["errors"] += errors_close + errors_keep
                # A failover the load itself caused (a guest too busy to answer its probes).
                failovers = status(name)["recoveries"] - recoveries
                entry["failovers"] += failovers
                log(f"round {round_ + 1} {path}: {handshakes:.0f} handshakes/s, {rps:.0f} requests/s, "
                    f"{mbps:.1f} MB/s, {failovers} failovers")
                wait_protected(name)
        medians = {path: {key: round(statistics.median(values), 1) if isinstance(values, list) else values
                          for key, values in entry.items()} for path, entry in figures.items()}
        pid = json.loads(run([FTVM, "status", "--name", name, "--json"]).stdout)["tlsPID"]
        idle = idle_sessions(name, arguments.idle, cafile, pid)
        log(f"idle: {idle}")
        across = panic(name, cafile)
        log(f"panic: {across}")
        report = {
            "medians": medians,
            "terminator_vs_in_guest": {
                key: round(medians["terminator"][key] / medians["in-guest"][key], 2)
                for key in ("handshakes_per_s", "rps", "download_mbps") if medians["in-guest"][key]
            },
            "idle": idle,
            "panic": across,
        }
        if arguments.json:
            print(json.dumps(report))
        else:
            print(f"{'path':<12}{'handshakes/s':>14}{'requests/s':>12}{'download MB/s':>15}{'errors':>8}"
                  f"{'failovers':>11}")
            for path, entry in medians.items():
                print(f"{path:<12}{entry['handshakes_per_s']:>14}{entry['rps']:>12}{entry['download_mbps']:>15}"
                      f"{entry['errors']:>8}{entry['failovers']:>11}")
            print(f"terminator / in-guest: {report['terminator_vs_in_guest']}")
            print(f"idle TLS sessions: {idle}")
            print(f"100 keep-alive sessions across a kernel panic: {across}")
    finally:
        run([FTVM, "down", "--name", name], check=False)
        subprocess.run(["rm", "-rf", directory])


if __name__ == "__main__":
    main()
