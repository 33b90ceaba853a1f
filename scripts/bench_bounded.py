#!/usr/bin/python3
"""Bounded-log benchmarks (docs/bounded-replay.md): figures for the bounded replay, printed as
markdown tables and JSON, run by hand (not in CI).

  recovery [--ages 10,1000,100000] [--connections 32] [--runs R]
      For each age A: C keep-alive connections each make A requests (GET /bytes/1024, pipelined
      in batches of 50 so old connections are quick to make: deeper than the relay's 64
      outstanding requests would stop its framing), then go on with one request at a time;
      a kernel panic is injected into the primary. Reports, from `ftvm status --json`, detection
      -> last connection spliced and -> first replayed byte, the client bytes re-injected per
      connection, and, from the clients, the longest wait for an answer, errors and resets. The
      goal: the 100,000-request figure within 1.2x the 10-request one.
  wrk [--seconds 30] [--connections 64] [--runs R]
      `wrk -t2 -cC -dSs --latency` against the demo service and against nginx, a kernel panic
      at a random moment of each run: socket errors of every kind, non-2xx answers, resets in
      the replay, p50/p99/max latency. Goal: 0 errors, 0 resets, max latency under 1 s.
  soak [--minutes 10] [--connections 32]
      A keep-alive wrk run; the log's bytes held sampled every second (plot in
      docs/bounded-soak.png): flat, whatever the connections' age.

Each subcommand brings a pair up (`--name`, default "bnch"), and takes it down afterwards.
Run from the repository after `bash scripts/prepare.sh`, as root, with the system Python (its
python3-matplotlib draws the soak's plot): `scripts/bench_bounded.py ...` (the shebang is
/usr/bin/python3). The soak's samples also go to docs/bounded-soak.csv.
usage: scripts/bench_bounded.py {recovery,wrk,soak} [options]
       scripts/bench_bounded.py client ...   (internal: the recovery client, inside the namespace)
"""
import argparse
import json
import os
import random
import selectors
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FTVM = os.path.join(REPO, ".build", "release", "ftvm")
EXCHANGES = os.path.join(REPO, "Tests", "tools", "exchanges.py")
SCRIPT = os.path.abspath(__file__)
ADDRESS = "10.77.0.2"


def log(message):
    print(f"bench_bounded: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The recovery client, inside the namespace. Lines on stdout: {"ready": ...} once every
# connection made its first A requests; then, after "stop" on stdin, {"connections": [...]}.
# ---------------------------------------------------------------------------------------------

class Client:
    def __init__(self, index, age, batch):
        self.index, self.age, self.batch = index, age, batch
        self.sock = socket.create_connection((ADDRESS, 80), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.request = f"GET /bytes/1024?seed={index} HTTP/1.1\r\nHost: b\r\n\r\n".encode()
        self.buffer = bytearray()
        self.done = 0  # answers read
        self.outstanding = 0
        self.last = time.monotonic()
        self.longest = 0.0  # the longest wait for an answer after `ready`
        self.error = None
        self.body = None

    def want(self, ready):
        """How many requests to have outstanding: batches until the age is reached, then (once
        the parent says go) one."""
        if self.done < self.age:
            return min(self.batch, self.age - self.done)
        return 1 if ready and GO[0] else 0

    def pump(self, ready):
        if self.error:
            return
        if self.outstanding == 0:
            count = self.want(ready)
            if count:
                self.sock.sendall(self.request * count)
                self.outstanding = count
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError as error:
            self.error = f"{type(error).__name__}: {error}"
            return
        if not data:
            self.error = "EOF"
            return
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = int(self.buffer[:head_end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.buffer) < head_end + 4 + length:
                return
            body = bytes(self.buffer[head_end + 4:head_end + 4 + length])
            if self.body is None:
                self.body = body
            elif body != self.body:
                self.error = "a body differs from the first"
            del self.buffer[:head_end + 4 + length]
            now = time.monotonic()
            if ready:
                self.longest = max(self.longest, now - self.last)
            self.last = now
            self.done += 1
            self.outstanding -= 1


GO = [False]  # set by the parent's "go": the connections, idle since they reached their age, go on


def client(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int)
    parser.add_argument("--age", type=int)
    parser.add_argument("--batch", type=int, default=50)
    options = parser.parse_args(argv)
    clients = [Client(i, options.age, options.batch) for i in range(options.connections)]
    selector = selectors.DefaultSelector()
    for c in clients:
        selector.register(c.sock, selectors.EVENT_READ, c)
    selector.register(sys.stdin, selectors.EVENT_READ, None)
    ready = False
    progress, progress_at = 0, time.monotonic()
    while True:
        for c in clients:
            c.pump(ready)
        total = sum(c.done for c in clients)
        if total != progress:
            progress, progress_at = total, time.monotonic()
        stalled = not ready and time.monotonic() - progress_at > 120
        if not ready and (stalled or all(c.done >= c.age or c.error for c in clients)):
            ready = True
            for c in clients:
                c.last = time.monotonic()
            print(json.dumps({"ready": total, "stalled": stalled}), flush=True)
        for key, _ in selector.select(0.05):
            if key.data is None:
                if sys.stdin.readline().strip() == "go":
                    GO[0] = True
                    for c in clients:
                        c.last = time.monotonic()
                    continue
                print(json.dumps({"connections": [
                    {"answers": c.done, "longest": c.longest, "error": c.error} for c in clients]}), flush=True)
                return
            key.data.pump(ready)


# ---------------------------------------------------------------------------------------------
# The parent.
# ---------------------------------------------------------------------------------------------

def ftvm(*args, check=True):
    result = subprocess.run([FTVM, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"ftvm {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result.stdout


def status(name):
    return json.loads(ftvm("status", "--name", name, "--json"))


def wait_protected(name, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(name)["phase"] == "protected":
            return
        time.sleep(0.5)
    raise SystemExit("the pair did not become protected")


def wait_recovery(name, before, timeout=60):
    """The next recovery, once its replay is no longer pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = status(name)
        recovery = s.get("lastRecovery")
        if s["recoveries"] > before and recovery and recovery.get("replay") and recovery["replay"]["pending"] == 0:
            return recovery
        time.sleep(0.2)
    raise SystemExit("no finished recovery")


def up(name, extra=()):
    ftvm("down", "--name", name, check=False)
    ftvm("up", "--name", name, *extra)
    wait_protected(name)


def recovery(options):
    rows = []
    for age in [int(a) for a in options.ages.split(",")]:
        for run in range(options.runs):
            up(options.name)
            before = status(options.name)["recoveries"]
            command = ["ip", "netns", "exec", f"ftvm-{options.name}", sys.executable, SCRIPT, "client",
                       "--connections", str(options.connections), "--age", str(age)]
            clients = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            started = time.monotonic()
            ready = json.loads(clients.stdout.readline())
            made = time.monotonic() - started
            if ready["stalled"]:
                raise SystemExit(f"age {age}: no answer for 120 s after {ready['ready']} requests (see the daemon log)")
            if options.settle:
                log(f"age {age}: {ready['ready']} requests made in {made:.1f} s; idle for {options.settle} s")
                time.sleep(options.settle)
            clients.stdin.write("go\n")
            clients.stdin.flush()
            log(f"age {age}: {ready['ready']} requests made in {made:.1f} s; injecting a kernel panic")
            time.sleep(1.0)
            ftvm("inject", "kernel-panic", "--name", options.name)
            rec = wait_recovery(options.name, before)
            time.sleep(2.0)
            clients.stdin.write("stop\n")
            clients.stdin.flush()
            report = json.loads(clients.stdout.readline())
            clients.wait(timeout=30)
            replay = rec["replay"]
            injected = [t["injectedBytes"] for t in replay.get("connectionTimings", [])]
            errors = [c["error"] for c in report["connections"] if c["error"]]
            rows.append({
                "age": age, "run": run, "requests_before": ready["ready"], "detect_ms": rec.get("detectMillis"),
                "last_spliced_ms": replay.get("lastSplicedMillis"), "first_byte_ms": replay.get("firstByteMillis"),
                "spliced": replay["spliced"], "reset": replay["reset"], "injected_max": max(injected, default=0),
                "client_longest_wait_ms": round(1000 * max(c["longest"] for c in report["connections"]), 1),
                "errors": errors,
            })
            log(json.dumps(rows[-1]))
            ftvm("down", "--name", options.name, check=False)
    print("| requests per connection before the fault | detect | -> last spliced | -> first replayed byte | "
          "client bytes re-injected (max) | longest client wait | spliced / reset | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for age in sorted({r["age"] for r in rows}):
        group = [r for r in rows if r["age"] == age]
        med = lambda key: statistics.median([r[key] for r in group if r[key] is not None])
        print(f"| {age:,} | {med('detect_ms'):.0f} ms | {med('last_spliced_ms'):.0f} ms | {med('first_byte_ms'):.0f} ms | "
              f"{max(r['injected_max'] for r in group)} B | {med('client_longest_wait_ms'):.0f} ms | "
              f"{sum(r['spliced'] for r in group)} / {sum(r['reset'] for r in group)} | "
              f"{sum(len(r['errors']) for r in group)} |")
    print(json.dumps(rows))


def run_exchanges(name, args):
    command = ["ip", "netns", "exec", f"ftvm-{name}", sys.executable, EXCHANGES, *args]
    result = subprocess.run(command, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def wrk(options):
    rows = []
    targets = [("demo service", f"http://{ADDRESS}/bytes/1024?seed=3"), ("nginx", f"http://{ADDRESS}:8081/index.html")]
    up(options.name)
    for run in range(options.runs):
        for label, url in targets:
            wait_protected(options.name)
            before = status(options.name)["recoveries"]
            at = round(random.uniform(0.2 * options.seconds, 0.8 * options.seconds), 1)
            report = run_exchanges(options.name, [
                "wrk", "--url", url, "--connections", str(options.connections), "--seconds", str(options.seconds),
                "--trigger", f"{at}:{FTVM} inject kernel-panic --name {options.name}"])
            rec = wait_recovery(options.name, before)
            replay = rec["replay"]
            rows.append({"target": label, "run": run, "fault_at_s": at, "requests": report["requests"],
                         "requests_per_s": report["requests_per_s"], "errors": report["errors"],
                         "non2xx": report["non2xx"], "replay_resets": replay["reset"], "spliced": replay["spliced"],
                         "p50_ms": report.get("p50_ms"), "p99_ms": report.get("p99_ms"),
                         "max_ms": report.get("latency_max_ms"), "last_spliced_ms": replay.get("lastSplicedMillis")})
            log(json.dumps(rows[-1]))
    ftvm("down", "--name", options.name, check=False)
    print("| server | fault at | requests | socket errors (connect/read/write/timeout) | non-2xx | resets | "
          "p50 | p99 | max latency | detect -> last spliced |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        e = r["errors"]
        print(f"| {r['target']} | {r['fault_at_s']} s | {r['requests']:,} | {e.get('connect', 0)}/{e.get('read', 0)}/"
              f"{e.get('write', 0)}/{e.get('timeout', 0)} | {r['non2xx']} | {r['replay_resets']} | {r['p50_ms']} ms | "
              f"{r['p99_ms']} ms | {r['max_ms']} ms | {r['last_spliced_ms']} ms |")
    print(json.dumps(rows))


def soak(options):
    up(options.name)
    seconds = int(options.minutes * 60)
    command = ["ip", "netns", "exec", f"ftvm-{options.name}", "wrk", "-t2", f"-c{options.connections}", f"-d{seconds}s",
               f"http://{ADDRESS}/bytes/1024?seed=5"]
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []
    started = time.monotonic()
    while load.poll() is None:
        log_status = status(options.name)["log"]
        samples.append((time.monotonic() - started, log_status["bytesHeld"], log_status["wrapper"]["exchanges"]))
        time.sleep(max(0.0, started + len(samples) - time.monotonic()))
    output = load.stdout.read()
    ftvm("down", "--name", options.name, check=False)
    with open(os.path.join(REPO, "docs", "bounded-soak.csv"), "w") as out:
        out.write("seconds,bytes_held,exchanges\n")
        out.writelines(f"{t:.1f},{h},{e}\n" for t, h, e in samples)
    held = [s[1] for s in samples]
    print(f"| samples | exchanges | bytes held: min | median | max | last |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {len(samples)} | {samples[-1][2]:,} | {min(held)} | {statistics.median(held):.0f} | {max(held)} | {held[-1]} |")
    print(output.strip().splitlines()[-3:])
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot
        figure, axis = pyplot.subplots(figsize=(8, 3.5))
        axis.plot([s[0] for s in samples], [s[1] / 1024 for s in samples], linewidth=0.8)
        axis.set_xlabel("seconds into the soak")
        axis.set_ylabel("client bytes held in the log (KiB)")
        axis.set_title(f"wrk -t2 -c{options.connections}, keep-alive: {samples[-1][2]:,} exchanges")
        axis.set_ylim(bottom=0)
        figure.tight_layout()
        figure.savefig(os.path.join(REPO, "docs", "bounded-soak.png"), dpi=110)
        log("wrote docs/bounded-soak.png")
    except ImportError:
        log("matplotlib is missing (run with /usr/bin/python3, which scripts/setup.sh gives python3-matplotlib): no plot")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="bnch")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recovery")
    r.add_argument("--ages", default="10,1000,100000")
    r.add_argument("--connections", type=int, default=32)
    r.add_argument("--runs", type=int, default=1)
    r.add_argument("--settle", type=float, default=0,
                   help="seconds the connections stay idle after reaching their age (the backup stays paused "
                        "that much longer: separates the pause's cost from the connections' age)")
    w = sub.add_parser("wrk")
    w.add_argument("--seconds", type=int, default=30)
    w.add_argument("--connections", type=int, default=64)
    w.add_argument("--runs", type=int, default=1)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=10)
    s.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    {"recovery": recovery, "wrk": wrk, "soak": soak}[options.command](options)


if __name__ == "__main__":
    main()
