#!/usr/bin/env python3
"""Client driver for the bounded-log integration tests and benchmarks: long keep-alive
sessions, pipelining, chunked responses, big and abandoned uploads, and wrk runs, each checked
against an independent reference and counting every error and reset. Standard library only;
run it inside the pair's network namespace, e.g.

    ip netns exec ftvm-NAME python3 Tests/tools/exchanges.py session --host 10.77.0.2 \\
        --requests 20000 --pipeline 4 --trigger 10000:'ftvm inject kernel-panic --name NAME'

Subcommands (a session opens ONE connection and never reconnects; its local port is reported):

  session --requests N [--pipeline D] [--mix bytes,chunked,head,version] [--size B]
          [--trigger K:CMD]... [--sample-every M --sample CMD] [--version-before V --version-after V]
      N requests on one keep-alive connection, D at a time in one send (pipelining; 1 = one by
      one). Requests cycle through the mix: GET /bytes/B?seed=S, GET /chunked/B?seed=S&chunk=K
      &trailer=1, HEAD /bytes/B, GET /version; every answer is parsed (Content-Length or chunked
      with trailers, no body for HEAD) and every body compared with the splitmix64 reference.
      A trigger K:CMD runs CMD in the background right after request K was sent, so the fault
      lands while its answer is in flight; the session waits for it before it ends. --sample
      runs CMD (e.g. `ftvm connections --json`) every M requests and records, from its JSON, the
      bytes the log holds for this connection (matched by local port): "held_max", "held_last".
      --version-before/--version-after: the session starts with GET /version (must be V1), runs
      the triggers to completion between two requests, and ends with GET /version (must be V2).
  upload --size B [--chunk C] [--rate R] [--abort-after A [--before-kill CMD]] [--source ADDR]
      POST /sha256 with a B-byte splitmix64 body (seed 99), checked against hashlib's digest,
      at most R bytes/s when --rate is given. With --abort-after, a child process sends A bytes
      and is killed with SIGKILL (a client that dies mid-body); --before-kill runs CMD first (a
      test removes the client's address there, so not even its kernel's FIN or RST gets out: a
      client that vanishes). --source binds the client to ADDR. A reset is reported as
      "outcome": "reset".
  wrk --url URL --connections C --seconds S [--threads T] [--trigger T:CMD]... [--body FILE]
      Runs wrk with --latency and a trigger at T seconds; reports requests, requests/s, the
      socket errors by kind (connect, read, write, timeout), non-2xx answers and the latency
      percentiles and maximum in milliseconds. --body: every answer's body must be FILE's bytes
      (a wrk script compares each one); "wrong_bodies" counts those that are not.

Common options: --host H, --port P (default 80), --timeout S (default 120).
Output: ONE JSON line on stdout with "ok" and the figures; diagnostics go to stderr. Exit
status 0 when every check passed.
"""

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splitmix import SplitMix64Stream  # noqa: E402

_start = time.monotonic()


def log(message: str) -> None:
    print(f"exchanges [{time.monotonic() - _start:7.3f}s] {message}", file=sys.stderr, flush=True)


def splitmix(seed: int, size: int) -> bytes:
    return SplitMix64Stream(seed).read(size)


class Trigger:
    """A shell command run once in a background thread; its timing and outcome are reported."""

    def __init__(self, at: float, command: str) -> None:
        self.at, self.command = at, command
        self.thread = None
        self.started = self.ended = None
        self.status = None
        self.output = ""

    def fire(self) -> None:
        if self.thread is not None:
            return
        self.started = time.monotonic() - _start
        log(f"trigger at {self.at}: {self.command}")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        process = subprocess.run(self.command, shell=True, capture_output=True, text=True)
        self.status = process.returncode
        self.output = (process.stdout + process.stderr)[-4000:]
        self.ended = time.monotonic() - _start
        log(f"trigger done ({self.status}): {self.output.strip()[:300]}")

    def wait(self, deadline: float) -> None:
        if self.thread is not None:
            self.thread.join(max(0.0, deadline - time.monotonic()))

    def report(self) -> dict:
        return {"at": self.at, "command": self.command, "started": self.started, "ended": self.ended,
                "status": self.status, "output": self.output}


def parse_trigger(text: str) -> Trigger:
    at, _, command = text.partition(":")
    return Trigger(float(at), command)


class Reader:
    """Buffered reads from a socket; every failure becomes one classified error."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, bytearray()

    def fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 2]
                return line
            if len(self.buffer) > 65536:
                raise ValueError("a line of more than 64 KiB")
            self.fill()

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.fill()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def response(self, head_only: bool) -> tuple[int, dict, bytes, dict]:
        """One final response (interim 1xx skipped): status, headers, body, trailers."""
        while True:
            status_line = self.line()
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ValueError(f"not a status line: {status_line[:80]!r}")
            status = int(parts[1])
            headers = {}
            while True:
                line = self.line()
                if not line:
                    break
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode()] = value.strip().decode()
            if 100 <= status < 200:
                continue
            break
        trailers = {}
        if head_only or status in (204, 304):
            return status, headers, b"", trailers
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    break
                body += self.exactly(size)
                if self.exactly(2) != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
            while True:
                line = self.line()
                if not line:
                    break
                name, _, value = line.partition(b":")
                trailers[name.strip().lower().decode()] = value.strip().decode()
            return status, headers, bytes(body), trailers
        length = int(headers.get("content-length", "-1"))
        if length < 0:
            raise ValueError("a response without Content-Length or chunked coding")
        return status, headers, self.exactly(length), trailers


def classify(error: BaseException) -> str:
    if isinstance(error, ConnectionResetError):
        return "reset"
    if isinstance(error, (BrokenPipeError, ConnectionAbortedError)):
        return "broken"
    if isinstance(error, socket.timeout):
        return "timeout"
    if isinstance(error, EOFError):
        return "eof"
    return "protocol"


def session(args) -> dict:
    deadline = time.monotonic() + args.timeout
    triggers = sorted(args.trigger, key=lambda t: t.at)
    mix = args.mix.split(",")
    sock = socket.create_connection((args.host, args.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    local_port = sock.getsockname()[1]
    reader = Reader(sock)
    failures, errors = [], {}
    done = 0
    held = []
    versions = {}
    references = {}

    def reference(seed: int, size: int) -> bytes:
        if (seed, size) not in references:
            references[(seed, size)] = splitmix(seed, size)
        return references[(seed, size)]

    def plan(index: int) -> tuple[bytes, str, int, int]:
        kind = mix[index % len(mix)]
        seed = 1000 + index % 97
        size = args.size + (index % 13) * 17
        if kind == "bytes":
            target, method = f"/bytes/{size}?seed={seed}", "GET"
        elif kind == "chunked":
            target, method = f"/chunked/{size}?seed={seed}&chunk={max(1, size // 3)}&trailer=1", "GET"
        elif kind == "head":
            target, method = f"/bytes/{size}?seed={seed}", "HEAD"
        else:
            target, method = "/version", "GET"
        request = f"{method} {target} HTTP/1.1\r\nHost: {args.host}\r\n\r\n".encode()
        return request, kind, seed, size

    def check(index: int, kind: str, seed: int, size: int, answer) -> None:
        status, headers, body, trailers = answer
        if status != 200:
            failures.append(f"request {index} ({kind}): status {status}")
        elif kind in ("bytes", "chunked") and body != reference(seed, size):
            failures.append(f"request {index} ({kind}): wrong body ({len(body)} bytes)")
        elif kind == "chunked" and trailers.get("x-length") != str(size):
            failures.append(f"request {index}: trailer {trailers}")
        elif kind == "head" and (body or headers.get("content-length") != str(size)):
            failures.append(f"request {index} (head): body {len(body)} / length {headers.get('content-length')}")

    def ask_version() -> str:
        sock.sendall(f"GET /version HTTP/1.1\r\nHost: {args.host}\r\n\r\n".encode())
        status, _, body, _ = reader.response(False)
        return body.decode().strip() if status == 200 else f"status {status}"

    def sample() -> None:
        if not args.sample:
            return
        output = subprocess.run(args.sample, shell=True, capture_output=True, text=True).stdout
        try:
            for connection in json.loads(output):
                if connection.get("client", "").endswith(f":{local_port}"):
                    held.append(connection.get("clientBytesHeld", 0))
        except ValueError:
            failures.append(f"--sample printed no JSON: {output[:200]}")

    try:
        if args.version_before:
            versions["before"] = ask_version()
        pending = list(triggers)
        while done < args.requests and time.monotonic() < deadline:
            count = min(args.pipeline, args.requests - done)
            batch = [plan(done + k) for k in range(count)]
            sock.sendall(b"".join(request for request, _, _, _ in batch))
            sent = done + count
            while pending and pending[0].at <= sent and not args.version_before:
                pending.pop(0).fire()
            for offset, (_, kind, seed, size) in enumerate(batch):
                check(done + offset, kind, seed, size, reader.response(kind == "head"))
            done = sent
            if args.sample_every and done % args.sample_every < count:
                sample()
            if args.version_before and pending and pending[0].at <= done:
                # Between two exchanges: the triggers run to completion first.
                while pending:
                    trigger = pending.pop(0)
                    trigger.fire()
                    trigger.wait(deadline)
        if args.version_after:
            versions["after"] = ask_version()
        sample()
    except (OSError, EOFError, ValueError) as error:
        kind = classify(error)
        errors[kind] = errors.get(kind, 0) + 1
        failures.append(f"after {done} answers: {kind}: {error}")
    for trigger in triggers:
        trigger.wait(deadline)
        if trigger.status != 0:
            failures.append(f"trigger {trigger.command!r} ended with {trigger.status}")
    if args.version_before and versions.get("before") != args.version_before:
        failures.append(f"/version before: {versions.get('before')!r}, wanted {args.version_before!r}")
    if args.version_after and versions.get("after") != args.version_after:
        failures.append(f"/version after: {versions.get('after')!r}, wanted {args.version_after!r}")
    if done < args.requests and not failures:
        failures.append(f"only {done} of {args.requests} requests before the deadline")
    sock.close()
    return {"ok": not failures, "answers": done, "local_port": local_port, "errors": errors,
            "failures": failures[:20], "held_max": max(held) if held else None, "held_last": held[-1] if held else None,
            "held_samples": len(held), "versions": versions, "triggers": [t.report() for t in triggers]}


def upload(args) -> dict:
    body_seed = 99

    def send(sock: socket.socket, limit: int, progress=None) -> None:
        sock.sendall(f"POST /sha256 HTTP/1.1\r\nHost: {args.host}\r\nContent-Length: {args.size}\r\n\r\n".encode())
        stream = SplitMix64Stream(body_seed)
        sent = 0
        began = time.monotonic()
        while sent < limit:
            chunk = stream.read(min(args.chunk, limit - sent))
            sock.sendall(chunk)
            sent += len(chunk)
            if progress is not None:
                progress(sent)
            if args.rate:
                time.sleep(max(0.0, began + sent / args.rate - time.monotonic()))

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(args.timeout)
        if args.source:
            sock.bind((args.source, 0))
        sock.connect((args.host, args.port))
        return sock

    if args.abort_after is not None:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            try:
                sock = connect()
                os.write(write, f"{sock.getsockname()[1]}\n".encode())
                send(sock, args.size, lambda n: n >= args.abort_after and os.write(write, b"!"))
                time.sleep(3600)
            finally:
                os._exit(0)
        os.close(write)
        port = b""
        while not port.endswith(b"\n"):
            port += os.read(read, 1)
        while os.read(read, 1) != b"!":
            pass
        if args.before_kill:
            subprocess.run(args.before_kill, shell=True, check=True)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        log(f"killed the uploading client (local port {int(port)}) after {args.abort_after} bytes")
        return {"ok": True, "local_port": int(port), "aborted_after": args.abort_after}

    sock = connect()
    started = time.monotonic()
    failures = []
    outcome = "complete"
    try:
        send(sock, args.size)
        status, _, answer, _ = Reader(sock).response(False)
        want = hashlib.sha256(splitmix(body_seed, args.size)).hexdigest()
        if status != 200 or answer.decode().strip() != want:
            outcome = "wrong"
            failures.append(f"answer {status} {answer[:80]!r}, wanted {want}")
    except (OSError, EOFError, ValueError) as error:
        outcome = classify(error)
        failures.append(f"{outcome}: {error}")
    seconds = time.monotonic() - started
    return {"ok": not failures, "outcome": outcome, "local_port": sock.getsockname()[1], "bytes": args.size,
            "seconds": round(seconds, 3), "mb_per_s": round(args.size / seconds / 1e6, 2), "failures": failures}


def wrk_counts(output: str) -> dict:
    """What wrk's report counts: requests completed, socket errors by kind, non-2xx answers."""
    requests = re.search(r"(\d+) requests in", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "errors": dict(zip(("connect", "read", "write", "timeout"), map(int, socket_errors.groups())))
        if socket_errors else {},
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


# wrk's Lua hooks for --body: each thread counts the answers that are not status 200 with
# exactly the file's bytes (its path is the script's argument); the total is printed at the end.
CHECKED_BODY = """
local threads = {}
local expected

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  expected = file:read("*a")
  file:close()
  wrong = 0
end

function response(status, headers, body)
  if status ~= 200 or body ~= expected then wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("wrong") end
  io.write(string.format("wrong bodies: %d\\n", total))
end
"""


def wrk(args) -> dict:
    triggers = sorted(args.trigger, key=lambda t: t.at)
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
               "--timeout", "5s"]
    script = None
    if args.body:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua")
        script.write(CHECKED_BODY)
        script.flush()
        command += ["-s", script.name, args.url, "--", os.path.abspath(args.body)]
    else:
        command.append(args.url)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    begun = time.monotonic()
    for trigger in triggers:
        time.sleep(max(0.0, begun + trigger.at - time.monotonic()))
        trigger.fire()
    output, _ = process.communicate(timeout=args.seconds + 60)
    if script is not None:
        script.close()
    for trigger in triggers:
        trigger.wait(time.monotonic() + 60)

    def milliseconds(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    report = {"output": output[-3000:], "triggers": [t.report() for t in triggers]}
    report.update(wrk_counts(output))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    report["requests_per_s"] = float(rate.group(1)) if rate else 0.0
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if latency:
        report["latency_mean_ms"], report["latency_max_ms"] = milliseconds(latency.group(1)), milliseconds(latency.group(3))
    for percentile in ("50", "75", "90", "99"):
        found = re.search(rf"\s{percentile}%\s+(\S+)", output)
        if found:
            report[f"p{percentile}_ms"] = milliseconds(found.group(1))
    failures = []
    if report["requests"] == 0:
        failures.append("wrk made no requests")
    if sum(report["errors"].values()) or report["non2xx"]:
        failures.append(f"errors {report['errors']}, non-2xx {report['non2xx']}")
    if args.body:
        wrong = re.search(r"wrong bodies: (\d+)", output)
        report["wrong_bodies"] = int(wrong.group(1)) if wrong else None
        if report["wrong_bodies"] is None:
            failures.append("wrk's body-checking script did not run")
        elif report["wrong_bodies"]:
            failures.append(f"{report['wrong_bodies']} answers were not {args.body}")
    failures += [f"trigger {t.command!r} ended with {t.status}" for t in triggers if t.status != 0]
    report["failures"] = failures
    report["ok"] = not failures
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("session", "upload", "wrk"):
        command = sub.add_parser(name)
        command.add_argument("--host", default="10.77.0.2")
        command.add_argument("--port", type=int, default=80)
        command.add_argument("--timeout", type=float, default=120)
        command.add_argument("--trigger", type=parse_trigger, action="append", default=[])
    s = sub.choices["session"]
    s.add_argument("--requests", type=int, required=True)
    s.add_argument("--pipeline", type=int, default=1)
    s.add_argument("--mix", default="bytes")
    s.add_argument("--size", type=int, default=1024)
    s.add_argument("--sample")
    s.add_argument("--sample-every", type=int, default=0)
    s.add_argument("--version-before")
    s.add_argument("--version-after")
    u = sub.choices["upload"]
    u.add_argument("--size", type=int, required=True)
    u.add_argument("--chunk", type=int, default=65536)
    u.add_argument("--rate", type=float)
    u.add_argument("--abort-after", type=int)
    u.add_argument("--before-kill")
    u.add_argument("--source")
    w = sub.choices["wrk"]
    w.add_argument("--url", required=True)
    w.add_argument("--connections", type=int, default=64)
    w.add_argument("--threads", type=int, default=2)
    w.add_argument("--seconds", type=int, default=30)
    w.add_argument("--body")
    args = parser.parse_args()
    report = {"session": session, "upload": upload, "wrk": wrk}[args.command](args)
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
