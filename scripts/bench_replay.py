#!/usr/bin/python3
"""Replay benchmark: recovery time against the number of open TCP connections.

For each connection count N, opens N connections from the client namespace, each halfway
through `GET /bytes/SIZE?seed=i` (head and the first ~1000 body bytes read, the rest left in
flight), panics the primary's kernel, then reads every body to its end and checks it byte for
byte against the splitmix64 reference (Tests/tools/splitmix.py). Reports, per N: detection, the
daemon's detection -> last connection spliced and detection -> first replayed byte (from
`ftvm status --json`, monotonic clock), the client's injection -> first byte after the failover,
the splice/reset counts and the verified bytes. Writes docs/replay-bench.md and
docs/replay-recovery.png.

Two choices keep the last measurement meaningful:
- The client sockets get a small receive buffer (--rcvbuf): with the kernel's default the whole
  64 KiB body sits in the client's buffer before the fault and the backup has nothing to send.
- By default the client starts reading once the daemon reports the failure (`--read-after
  detection`), not right after `ftvm inject` returns: the panic comes some 20-50 ms after the
  injection (the guest agent triggers it), and a client reading meanwhile lets the dying primary
  send the rest of every body, leaving nothing for the backup. `--read-after injection` reads at
  once; the "early" column then counts the connections the old primary served after the fault.

usage: scripts/bench_replay.py [--counts 1,10,100,1000] [--runs R] [--size BYTES] [--name NAME]
       scripts/bench_replay.py client ...   (internal: the client, run inside the namespace)
"""
import argparse
import datetime
import errno
import fcntl
import hashlib
import json
import os
import platform
import resource
import select
import selectors
import shlex
import socket
import statistics
import struct
import subprocess
import sys
import termios
import time

from benchpair import PairCLI

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.abspath(__file__)
DOC = os.path.join(REPO, "docs", "replay-bench.md")
PLOT = os.path.join(REPO, "docs", "replay-recovery.png")
PORT = 80
PREFIX = 1000  # body bytes each client reads before the fault
OPENING = 64  # connections being opened at once (the guest's listen backlog is finite)


# ---------------------------------------------------------------------------------------------
# The client: runs inside the pair's namespace, talks to the parent in JSON lines.
#   client -> parent  {"ready": K, "failed": [...]}   all N connections halfway through a body
#   parent -> client  go                                  the fault is in (and detected): read all
#   client -> parent  {"connections": [...]}             per connection: bytes, SHA-256, times
#   parent -> client  quit                                close everything and exit
# ---------------------------------------------------------------------------------------------

class Connection:
    def __init__(self, seed, address, size, rcvbuf):
        self.seed = seed
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect: the window scale is fixed by the SYN.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setblocking(False)
        self.request = f"GET /bytes/{size}?seed={seed} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
        self.connected = False
        self.head = b""
        self.length = None  # Content-Length, once the head is in
        self.body = 0  # body bytes read
        self.digest = hashlib.sha256()
        self.buffered = 0  # bytes in the socket's receive queue when the fault went in
        self.after = 0  # bytes read since then
        self.events = []  # monotonic times of reads that returned bytes received after the fault
        self.error = None

    def take(self, data):
        """Adds body bytes; returns False (and sets error) on more than Content-Length."""
        if self.body + len(data) > self.length:
            self.error = f"{self.body + len(data) - self.length} bytes past the end of the body"
            return False
        self.digest.update(data)
        self.body += len(data)
        return True

    def fail(self, what):
        self.error = f"{what} after {self.body} of {self.length if self.length is not None else '?'} body bytes"


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            sys.exit(f"client: {needed} descriptors needed, hard limit {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def open_all(options):
    """Connects, sends each request and reads its head plus PREFIX body bytes; keeps at most
    OPENING connections in progress. Returns the connections (failed ones carry an error)."""
    connections = [Connection(i, options.address, options.size, options.rcvbuf) for i in range(options.count)]
    waiting = list(reversed(connections))
    selector = selectors.DefaultSelector()
    busy = 0
    deadline = time.monotonic() + options.timeout
    while waiting or busy:
        while waiting and busy < OPENING:
            c = waiting.pop()
            err = c.sock.connect_ex((options.address, options.port))
            if err not in (0, errno.EINPROGRESS):
                c.error = f"connect: {os.strerror(err)}"
                continue
            selector.register(c.sock, selectors.EVENT_WRITE, c)
            busy += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for key in list(selector.get_map().values()):
                key.data.fail("timed out opening")
            break
        for key, _ in selector.select(min(remaining, 1.0)):
            c = key.data
            if not step_open(c, selector):
                continue
            selector.unregister(c.sock)
            busy -= 1
    selector.close()
    return connections


def step_open(c, selector):
    """One readiness event while opening; True when the connection is done (ready or failed)."""
    if not c.connected:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            c.error = f"connect: {os.strerror(err)}"
            return True
        c.sock.send(c.request)  # a few dozen bytes into an empty send buffer: taken whole
        c.connected = True
        selector.modify(c.sock, selectors.EVENT_READ, c)
        return False
    try:
        # Never read past PREFIX body bytes: the rest must still be the server's to send.
        want = 256 if c.length is None else PREFIX - c.body
        data = c.sock.recv(want)
    except BlockingIOError:
        return False
    except OSError as error:
        c.fail(f"{error.strerror or error} while opening")
        return True
    if not data:
        c.fail("closed while opening")
        return True
    if c.length is None:
        c.head += data
        end = c.head.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, rest = c.head[:end], c.head[end + 4:]
        c.head = head
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            c.error = f"status line {lines[0]!r}"
            return True
        c.length = next((int(v) for n, _, v in (l.partition(":") for l in lines[1:])
                         if n.strip().lower() == "content-length"), None)
        if c.length is None:
            c.error = "no Content-Length"
            return True
        if not c.take(rest):
            return True
    elif not c.take(data):
        return True
    return c.body >= min(PREFIX, c.length)


def read_rest(connections, timeout):
    """Reads every body to its end, timing the reads that return bytes received after the fault."""
    selector = selectors.DefaultSelector()
    for c in connections:
        # What is queued already came from the old primary: the client's window was shut.
        c.buffered = struct.unpack("i", fcntl.ioctl(c.sock, termios.FIONREAD, b"\0" * 4))[0]
        if c.body < c.length:
            selector.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    while selector.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for key in list(selector.get_map().values()):
                key.data.fail("timed out")
                selector.unregister(key.fileobj)
            break
        for key, _ in selector.select(min(remaining, 1.0)):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as error:
                c.fail(error.strerror or str(error))  # ECONNRESET: the replay gave up on it
                selector.unregister(c.sock)
                continue
            now = time.monotonic()
            if not data:
                c.fail("closed")
                selector.unregister(c.sock)
                continue
            c.after += len(data)
            if c.after > c.buffered:
                c.events.append(round(now, 6))
            if not c.take(data) or c.body == c.length:
                selector.unregister(c.sock)
    selector.close()


def client(argv):
    parser = argparse.ArgumentParser(prog="bench_replay.py client")
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--rcvbuf", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120)
    options = parser.parse_args(argv)
    raise_nofile(options.count + 64)

    connections = open_all(options)
    failed = [f"seed {c.seed}: {c.error}" for c in connections if c.error]
    print(json.dumps({"ready": len(connections) - len(failed), "failed": failed}), flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    read_rest([c for c in connections if not c.error], options.timeout)
    print(json.dumps({"connections": [
        {"seed": c.seed, "length": c.length, "bodyBytes": c.body, "sha256": c.digest.hexdigest(),
         "buffered": c.buffered, "events": c.events, "error": c.error} for c in connections]}), flush=True)
    sys.stdin.readline()  # quit (or EOF: the parent is gone)
    for c in connections:
        c.sock.close()


# ---------------------------------------------------------------------------------------------
# The parent: drives the pair, the client and the report.
# ---------------------------------------------------------------------------------------------

class Pair(PairCLI):
    def __init__(self, name):
        super().__init__(name)
        self.log = None  # the daemon's log file, as `ftvm up` names it

    def up(self):
        output = self.ftvm("up", timeout=400)
        for line in output.splitlines():
            if ", log " in line:
                self.log = line.rsplit(", log ", 1)[1].rstrip(")").strip()

    def log_size(self):
        try:
            return os.path.getsize(self.log) if self.log else 0
        except OSError:
            return 0

    def wait_detection(self, log_offset, recoveries, timeout=30):
        """Returns once the daemon has declared the primary failed. Watches the daemon's log for
        its "primary failed" line: a status call queries libvirt, which is busy fencing and
        resuming just then (back-to-back status calls added ~8 ms to the resume phase). Every
        quarter second it asks `ftvm status` as well, in case the log says nothing."""
        deadline = time.monotonic() + timeout
        next_status = time.monotonic() + 0.25
        seen = b""
        log = None
        try:
            if self.log:
                log = open(self.log, "rb")
                log.seek(log_offset)
            while time.monotonic() < deadline:
                if log:
                    seen = seen[-200:] + log.read()
                    if b"] primary failed" in seen:
                        return
                if time.monotonic() >= next_status:
                    current = self.status()
                    if current["phase"] != "protected" or current["recoveries"] > recoveries:
                        return
                    next_status = time.monotonic() + 0.25
                time.sleep(0.002)
        finally:
            if log:
                log.close()
        sys.exit(f"the daemon did not report the failure within {timeout} s of the injection")


class Client:
    """The client process inside the namespace; `kill` is safe to call at any time."""

    def __init__(self, namespace, address, count, size, rcvbuf):
        command = ["ip", "netns", "exec", namespace, sys.executable, SCRIPT, "client", "--address", address,
                   "--count", str(count), "--size", str(size), "--rcvbuf", str(rcvbuf)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def receive(self, timeout, what):
        # One line per exchange, and the client never sends two without an answer: select on
        # the pipe cannot miss a line sitting in the text wrapper's buffer.
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            sys.exit(f"client: no {what} within {timeout} s (exit status {self.process.poll()})")
        return json.loads(line)

    def kill(self):
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)


def injection_instant(message, before, after):
    """The daemon's injection time on our monotonic clock: `ftvm inject` prints it as wall
    time (milliseconds); clamped into the interval the call took."""
    try:
        wall = datetime.datetime.fromisoformat(message.rsplit(" at ", 1)[1].strip()).timestamp()
    except (IndexError, ValueError):
        return (before + after) / 2
    instant = wall - (time.time() - time.monotonic())
    return min(max(instant, before), after)


def one_run(pair, status, count, options, references):
    """One fault with `count` open connections; returns the run's numbers."""
    previous = (status.get("lastRecovery") or {}).get("failedDomain")
    recoveries = status["recoveries"]
    client = Client(status["namespace"], status["serviceAddress"], count, options.size, options.rcvbuf)
    try:
        ready = client.receive(120 + count * 0.2, "ready line")
        if ready["failed"]:
            sys.exit(f"{len(ready['failed'])} of {count} connections could not be opened: {ready['failed'][:5]}")
        log_offset = pair.log_size()
        before = time.monotonic()
        message = pair.ftvm("inject", "kernel-panic", timeout=60)
        after = time.monotonic()
        if options.read_after == "detection":
            # The client's window stays shut until the relay has stopped listening to the old primary.
            pair.wait_detection(log_offset, recoveries)
        go = time.monotonic()
        client.send("go")
        injected = injection_instant(message, before, after)
        result = client.receive(180, "result line")
        # Connections stay open until the record is final: closing one could count as closed
        # during the replay.
        current = pair.wait(lambda s: (s.get("lastRecovery") or {}).get("failedDomain") not in (None, previous),
                            120, "the recovery record")
    finally:
        client.kill()

    record = current["lastRecovery"]
    replay = record.get("replay") or {}
    phases = {p["name"]: p["sinceDetectionMillis"] for p in record.get("phases", [])}
    detect = record.get("detectMillis")
    detected = injected + detect / 1000 if detect is not None else injected

    verified, verified_bytes, failures, first, early, idle = 0, 0, [], [], 0, 0
    for c in result["connections"]:
        if c["error"]:
            failures.append(f"seed {c['seed']}: {c['error']}")
        elif c["bodyBytes"] != options.size:
            failures.append(f"seed {c['seed']}: {c['bodyBytes']} body bytes, expected {options.size}")
        elif c["sha256"] != references(options.size, c["seed"]):
            failures.append(f"seed {c['seed']}: SHA-256 differs from splitmix64")
        else:
            verified += 1
            verified_bytes += c["bodyBytes"]
        # The first byte after the failover: the first read after the detection (the relay stops
        # forwarding the old primary then); reads before it carried the dying primary's bytes.
        later = [t for t in c["events"] if t >= detected]
        early += any(t < detected for t in c["events"])
        if later:
            first.append((later[0] - injected) * 1000)
        else:
            idle += 1
    return {
        "count": count, "detect": detect, "phases": phases, "error": record.get("error"),
        "cause": record.get("cause"), "lastSpliced": replay.get("lastSplicedMillis"),
        "firstByte": replay.get("firstByteMillis"), "replayed": replay.get("connections"),
        "spliced": replay.get("spliced", 0), "reset": replay.get("reset", 0), "resets": replay.get("resets", []),
        "pending": replay.get("pending", 0), "closedDuringReplay": replay.get("closedDuringReplay", 0),
        "regenerated": sum(t["regeneratedBytes"] for t in replay.get("connectionTimings", [])),
        "clientFirst": first, "early": early, "idle": idle, "go": (go - detected) * 1000,
        "verified": verified, "verifiedBytes": verified_bytes, "failures": failures,
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ms(value):
    return "n/a" if value is None else f"{value:.1f}"


def summarize(runs):
    pooled = [t for r in runs for t in r["clientFirst"]]
    return {
        "count": runs[0]["count"], "runs": len(runs),
        "detect": median(r["detect"] for r in runs),
        "lastSpliced": median(r["lastSpliced"] for r in runs),
        "firstByte": median(r["firstByte"] for r in runs),
        "clientMedian": median(pooled), "clientMax": max(pooled) if pooled else None,
        "connections": sum(r["count"] for r in runs),
        "spliced": sum(r["spliced"] for r in runs), "reset": sum(r["reset"] for r in runs),
        "verified": sum(r["verified"] for r in runs), "verifiedBytes": sum(r["verifiedBytes"] for r in runs),
    }


SUMMARY_HEAD = ("| connections | runs | detect | detect → last spliced | detect → first replayed byte "
                "| client: injection → first byte (median / max) | spliced / reset | bodies verified |\n"
                "|---:|---:|---:|---:|---:|---:|---:|---:|")


def summary_row(s):
    return (f"| {s['count']} | {s['runs']} | {ms(s['detect'])} | {ms(s['lastSpliced'])} | {ms(s['firstByte'])} "
            f"| {ms(s['clientMedian'])} / {ms(s['clientMax'])} | {s['spliced']} / {s['reset']} "
            f"| {s['verified']}/{s['connections']} ({s['verifiedBytes']} B) |")


DETAIL_HEAD = ("| N | run | detect | fence | switch | resume | first packet | last spliced | first byte "
               "| client reads from | client median / max | spliced / reset / pending | regenerated B | early "
               "| verified |\n"
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def detail_row(r, index):
    p = r["phases"]
    return (f"| {r['count']} | {index} | {ms(r['detect'])} | {ms(p.get('fence'))} | {ms(p.get('switch'))} "
            f"| {ms(p.get('resume'))} | {ms(p.get('first-packet'))} | {ms(r['lastSpliced'])} | {ms(r['firstByte'])} "
            f"| {r['go']:+.1f} | {ms(median(r['clientFirst']))} / {ms(max(r['clientFirst'], default=None))} "
            f"| {r['spliced']} / {r['reset']} / {r['pending']} | {r['regenerated']} | {r['early']} "
            f"| {r['verified']}/{r['count']} |")


def machine(status):
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    health = status["health"]
    return (f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}; Linux {platform.release()}; "
            f"accelerator `{status['accelerator']}`; health tick {health['tickMillis']} ms, "
            f"{health['missedTicks']} missed ticks; fence {status['fence']}")


def write_doc(command, started, status, options, summaries, runs):
    lines = [
        "# Replay benchmark: recovery time against open connections",
        "",
        "Generated by `scripts/bench_replay.py`; do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {started}",
        f"- machine: {machine(status)}",
        "",
        f"Each run opens N connections from the client namespace to {status['serviceAddress']}:{PORT}, each with "
        f"`GET /bytes/{options.size}?seed=i` (i = 0..N-1) sent and only the head and the first {PREFIX} body "
        f"bytes read (client receive buffer {options.rcvbuf or 'kernel default'} B, so the server has sent more "
        "than the client read but not the whole body). Then `ftvm inject kernel-panic`, and "
        + ("once the daemon has declared the primary failed (so the dying primary cannot send the rest) "
           if options.read_after == "detection" else "at once ")
        + "the client reads every body to its end on the same connection and compares its SHA-256 with the "
        "splitmix64 reference.",
        "",
        "Milliseconds. *detect*: injection → declared failure. *last spliced* and *first replayed byte*: from "
        "the detection, as the daemon reports them (`lastRecovery.replay`). *client*: injection → the first "
        "byte the client received after the detection, over all connections of all runs. Daemon columns are "
        "medians over the runs; spliced / reset and verified are totals.",
        "",
        SUMMARY_HEAD,
        *[summary_row(s) for s in summaries],
        "",
        "![detection to last spliced and to first replayed byte against connections](replay-recovery.png)",
        "",
        "## Every run",
        "",
        "Phases are from the detection. *client reads from*: when the client started reading the rest, from "
        "the detection. *regenerated B*: server bytes the backup regenerated and checked. *early*: connections "
        "that received bytes between the injection and the detection (the dying primary still sending).",
        "",
        DETAIL_HEAD,
        *[detail_row(r, i + 1) for count in summaries for i, r in enumerate(runs[count["count"]])],
        "",
    ]
    problems = [(r, i + 1) for count in summaries for i, r in enumerate(runs[count["count"]])
                if r["resets"] or r["failures"] or r["error"] or r["idle"] or r["replayed"] != r["count"]
                or r["closedDuringReplay"]]
    if problems:
        lines += ["## Resets and failures", ""]
        for r, i in problems:
            what = []
            if r["error"]:
                what.append(f"recovery error: {r['error']}")
            what += [f"reset: {reason}" for reason in r["resets"]]
            what += [f"client: {failure}" for failure in r["failures"][:20]]
            if r["replayed"] != r["count"]:
                what.append(f"the daemon replayed {r['replayed']} connections, the client had {r['count']} open")
            if r["closedDuringReplay"]:
                what.append(f"{r['closedDuringReplay']} closed during the replay")
            if r["idle"]:
                what.append(f"{r['idle']} connections received nothing after the detection")
            lines += [f"- N={r['count']} run {i}: " + "; ".join(what)]
        lines.append("")
    with open(DOC, "w") as doc:
        doc.write("\n".join(lines))


def write_plot(pyplot, summaries):
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    counts = [s["count"] for s in summaries]
    for key, label in (("lastSpliced", "detect → last spliced"), ("firstByte", "detect → first replayed byte")):
        points = [(c, s[key]) for c, s in zip(counts, summaries) if s[key] is not None]
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xticks(counts, [str(c) for c in counts])
    axes.set_ylim(bottom=0)
    axes.set_xlabel("open connections")
    axes.set_ylabel("ms (median over runs)")
    axes.set_title("Replay after a kernel panic")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=120)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,10,100,1000", help="connection counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="injections per count")
    parser.add_argument("--size", type=int, default=65536, help="body bytes per connection")
    parser.add_argument("--name", default="benchrp", help="the pair's name (brought up and removed here)")
    parser.add_argument("--rcvbuf", type=int, default=16384,
                        help="client SO_RCVBUF in bytes; 0 keeps the kernel's (the whole body then arrives early)")
    parser.add_argument("--read-after", choices=["detection", "injection"], default="detection",
                        help="when the client reads the rest: once the daemon reports the failure, or at once")
    options = parser.parse_args()
    counts = [int(c) for c in options.counts.split(",") if c]
    if options.size <= PREFIX:
        sys.exit(f"--size must be above {PREFIX}: the client reads that much before the fault")
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        sys.exit(f"matplotlib is missing for {sys.executable}: run scripts/setup.sh (it installs "
                 "python3-matplotlib, for Debian's /usr/bin/python3)")
    sys.path.insert(0, os.path.join(REPO, "Tests", "tools"))
    sys.dont_write_bytecode = True  # no __pycache__ left in Tests/tools
    from splitmix import stream_sha256

    hashes = {}

    def references(length, seed):
        # Runs reuse seeds 0..N-1: each reference is computed once.
        if (length, seed) not in hashes:
            hashes[length, seed] = stream_sha256(length, seed)
        return hashes[length, seed]

    command = shlex.join([os.path.relpath(SCRIPT, os.getcwd()), *sys.argv[1:]])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    pair = Pair(options.name)
    pair.down()
    try:
        pair.up()
        status = pair.status()
        print(f"pair {options.name} up; {machine(status)}")
        runs = {}
        for count in counts:
            runs[count] = []
            for index in range(options.runs):
                status = pair.wait(lambda s: s["protected"] and (s.get("lastRecovery") or {}).get("reprotected", True),
                                   300, "protection")
                run = one_run(pair, status, count, options, references)
                runs[count].append(run)
                print(f"N={count} run {index + 1}: detect {ms(run['detect'])} ms, last spliced {ms(run['lastSpliced'])}"
                      f" ms, first byte {ms(run['firstByte'])} ms, client median {ms(median(run['clientFirst']))} ms;"
                      f" spliced {run['spliced']} reset {run['reset']}, verified {run['verified']}/{count}"
                      + (f"; resets: {run['resets'][:3]}" if run["resets"] else "")
                      + (f"; failures: {run['failures'][:3]}" if run["failures"] else ""), flush=True)
        summaries = [summarize(runs[count]) for count in counts]
        print("\nmilliseconds; daemon columns are medians over runs, client over all connections")
        print(SUMMARY_HEAD.split("\n")[0])
        for s in summaries:
            print(summary_row(s))
        write_doc(command, started, status, options, summaries, runs)
        write_plot(pyplot, summaries)
        print(f"\nwrote {os.path.relpath(DOC, REPO)} and {os.path.relpath(PLOT, REPO)}")
    finally:
        pair.down()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2:])
    else:
        main()
