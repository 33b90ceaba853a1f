#!/usr/bin/env python3
"""Traffic driver for the failover integration tests: proves that TCP connections to the demo
service survive a failover byte for byte. Standard library only; run it inside the pair's
network namespace, e.g.

    ip netns exec ftvm-NAME python3 Tests/tools/workload.py mix --host 10.77.0.2 \\
        --count 8 --sizes 1M:64M --seed 7 --random-size 32M \\
        --pace-until-trigger 2M --trigger 0.3:'ftvm inject kernel-panic --name NAME'

Subcommands (every one opens its connections once and NEVER reconnects):

  downloads --count K --sizes MIN:MAX [--rate R]
      K concurrent `GET /bytes/N?seed=S` on K sockets driven by one selector. Sizes are drawn
      deterministically from --seed in [MIN, MAX]; seeds are SEED, SEED+1, ... Each body is
      checked as it arrives against the splitmix64 reference (splitmix.py, same directory) and
      both are hashed with SHA-256; nothing is buffered beyond one read.
  upload --size N [--chunk C] [--pause-ms P]
      One `POST /sha256` whose body (splitmix64, seed SEED+2000000) is sent C bytes at a time
      with P ms between chunks; the answer must be hashlib's digest.
  keepalive --requests R [--sizes MIN:MAX] [--pause-ms P]
      R requests on one connection, cycling GET /bytes/N, POST /sha256 (N bytes) and
      GET /version, with a pause between requests; every response is checked and the local
      port must stay the same.
  static --port 8080 --path P --sha256 HEX
      Downloads one static file (busybox httpd) and compares its digest.
  random --size N [--allow-complete]
      GET /random/N. The backup's replay of this request differs, so across a failover the
      expected outcome is a reset (RST, or EOF before N bytes): outcome "reset", "complete",
      "timeout" or "error". Passes only on "reset" unless --allow-complete.
  mix [--only LIST | --skip LIST] ...
      Runs the parts above concurrently, one thread each (downloads, upload, keepalive,
      random by default; static too when --static-path is given). Download options keep their
      names (--count, --sizes, --rate); the others are prefixed: --upload-size,
      --upload-chunk, --upload-pause-ms, --keepalive-requests, --keepalive-sizes,
      --keepalive-pause-ms, --static-port, --static-path, --static-sha256, --random-size,
      --random-allow-complete (the unambiguous --requests, --chunk, --path, --sha256 and
      --allow-complete work too).

Common options:
  --host H (required), --port (service port, default 80; static's default is 8080)
  --seed BASE        base of every seed and size choice (default 1)
  --timeout S        overall deadline (default 120): unfinished transfers become "timeout"
  --trigger F:CMD    repeatable. When the bytes moved (received + sent) first reach fraction F
                     of the bytes the whole workload expects, CMD runs once (shell, background
                     thread, same network namespace). Its start/end times (seconds from start),
                     exit status and output are reported; a trigger that fails, never fires, or
                     still runs at the deadline (it is then killed) fails the run.
  --pace-until-trigger R
                     every transfer moves at most R bytes/s (reads slowly, so the server's
                     sends stall on the TCP window) until every trigger has fired AND its
                     command has exited, then runs at full speed. Keeps transfers in flight
                     when the fault lands.
  --rcvbuf B         SO_RCVBUF for every socket (smaller: the server cannot run far ahead of
                     a paced reader)
Sizes and rates accept K, M, G suffixes (powers of 1024), e.g. 64M, 1.5M.

Output: ONE JSON line on stdout: "ok", "parts" (per-part reports), "triggers", "totals"
(bytes_expected, bytes_ok, lost_or_corrupted = expected bytes of transfers that did not
complete correctly, triggers_fired, ...) and "failures" (one line per failed check). The
byte totals count payload (bodies) only, and leave out the random part, whose content cannot
be verified. Exit status 0 when every check passed, 1 otherwise (2 for bad arguments).
Diagnostics go to stderr.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # importing splitmix must not leave __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splitmix import MASK, SplitMix64Stream  # noqa: E402  (needs the path set above)

RECV_SIZE = 256 * 1024  # most bytes one recv asks for
HEAD_RECV_SIZE = 4096  # heads are read in small steps so they pull in little of the body
HEAD_LIMIT = 64 * 1024
DIGEST_ANSWER = 65  # bytes in a /sha256 answer: 64 hex digits and "\n"
OUTPUT_LIMIT = 4000  # characters of a trigger's output kept in the report
PARTS = ("downloads", "upload", "keepalive", "static", "random")

# Seed offsets from --seed, so the parts of one mix never ask for the same stream.
KEEPALIVE_SEEDS = 1_000_000
UPLOAD_SEED = 2_000_000

_log_lock = threading.Lock()
_start = time.monotonic()


def log(message: str) -> None:
    with _log_lock:
        print(f"[workload {time.monotonic() - _start:8.3f}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Argument parsing helpers

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?)([KMGT]?)(?:I?B)?")
_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'65536', '64K', '1.5M', '2GiB', '100B' -> bytes (suffixes are powers of 1024)."""
    match = _SIZE.fullmatch(text.strip().upper().replace("_", ""))
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return int(float(match[1]) * _SUFFIXES[match[2]])


def parse_range(text: str) -> tuple[int, int]:
    """'MIN:MAX' or a single size."""
    low, _, high = text.partition(":")
    lo, hi = parse_size(low), parse_size(high or low)
    if lo > hi:
        raise argparse.ArgumentTypeError(f"empty range {text!r}")
    return lo, hi


def parse_trigger(text: str) -> "Trigger":
    fraction, sep, command = text.partition(":")
    try:
        value = float(fraction)
    except ValueError:
        value = -1.0
    if not sep or not command.strip() or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected FRACTION:COMMAND with 0 <= FRACTION <= 1, got {text!r}")
    return Trigger(value, command)


# ---------------------------------------------------------------------------------------------
# Errors and how they are reported


class DeadlineExceeded(Exception):
    """The overall --timeout passed."""


class Eof(Exception):
    """The peer closed the connection (FIN) before the expected bytes arrived."""


class ProtocolError(Exception):
    """The response is not what the service should have sent."""


def describe(error: BaseException) -> str:
    """The short error strings of the report: 'reset', 'timeout', 'eof after X bytes', ..."""
    if isinstance(error, (DeadlineExceeded, TimeoutError)):
        return "timeout"
    if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, (Eof, ProtocolError)):
        return str(error)
    if isinstance(error, OSError):
        return f"{type(error).__name__}: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------------------
# Triggers, shared progress, pacing


class Trigger:
    """A shell command run once, in a background thread, when the workload reaches a fraction."""

    def __init__(self, fraction: float, command: str) -> None:
        self.fraction = fraction
        self.command = command
        self.fired_at: float | None = None  # seconds since the workload started
        self.fired_fraction: float | None = None
        self.finished_at: float | None = None
        self.status: int | None = None
        self.output = ""
        self.error: str | None = None
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def fire(self, workload: "Workload", fraction: float) -> None:
        self.fired_at = workload.elapsed()
        self.fired_fraction = fraction
        log(f"trigger {self.fraction}: at {fraction:.3f} of the workload, running {self.command!r}")
        self._thread = threading.Thread(target=self._run, args=(workload,), daemon=True)
        self._thread.start()

    def _run(self, workload: "Workload") -> None:
        try:
            # Own session: a trigger that outlives the deadline is killed with its children.
            self._process = subprocess.Popen(
                self.command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True)
            output, _ = self._process.communicate()
            self.output = output.decode("utf-8", "replace")[-OUTPUT_LIMIT:]
            self.status = self._process.returncode
        except OSError as error:
            self.error = describe(error)
        self.finished_at = workload.elapsed()
        log(f"trigger {self.fraction}: exited with {self.status} after "
            f"{self.finished_at - self.fired_at:.3f}s: {self.output.strip()[-300:]!r}")

    def finish(self, deadline: float) -> None:
        """Waits for the command until the deadline (monotonic), then kills it."""
        if self._thread is None:
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self.error = "timeout"
            if self._process is not None:
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except OSError:
                    pass
            self._thread.join(5)

    @property
    def ok(self) -> bool:
        return self.fired_at is not None and self.error is None and self.status == 0

    def report(self) -> dict:
        return {
            "fraction": self.fraction, "command": self.command, "fired": self.fired_at is not None,
            "fired_at": _round(self.fired_at), "fired_fraction": _round(self.fired_fraction),
            "finished_at": _round(self.finished_at), "exit_status": self.status, "error": self.error,
            "output": self.output, "ok": self.ok,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class Workload:
    """What every part shares: the deadline, the byte counts triggers are measured on, pacing.

    Parts declare their expected bytes before `begin()` (static, whose size comes with its
    response head, declares it then), and report every payload byte they move to `moved()`.
    """

    def __init__(self, timeout: float, triggers: list[Trigger], pace: float | None, rcvbuf: int | None) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.triggers = sorted(triggers, key=lambda t: t.fraction)
        self.pace = pace
        self.rcvbuf = rcvbuf
        self.expected = 0
        self.done = 0
        self._begun = False
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        """Seconds left; raises DeadlineExceeded when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded()
        return left

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.remaining()))
        self.remaining()

    def expect(self, count: int) -> None:
        with self._lock:
            self.expected += count

    def begin(self) -> None:
        with self._lock:
            self._begun = True
            self._check_triggers()

    def moved(self, count: int) -> None:
        with self._lock:
            self.done += count
            self._check_triggers()

    def _check_triggers(self) -> None:
        if not self._begun:
            return
        # Nothing declared yet (static alone, before its head): only fraction-0 triggers fire.
        fraction = self.done / self.expected if self.expected else 0.0
        for trigger in self.triggers:
            if trigger.fired_at is None and fraction >= trigger.fraction:
                trigger.fire(self, fraction)

    def pace_rate(self) -> float | None:
        """The --pace-until-trigger rate while it applies, else None."""
        if self.pace and any(t.finished_at is None for t in self.triggers):
            return self.pace
        return None

    def new_socket(self, family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        return sock


class Pacer:
    """Token bucket for one transfer: at most min(its own rate, the workload's pacing rate)
    bytes per second, or no limit when neither applies."""

    def __init__(self, workload: Workload, rate: float | None = None) -> None:
        self.workload = workload
        self.rate = rate
        self.tokens = 0.0
        self.last = time.monotonic()

    def current_rate(self) -> float | None:
        rates = [r for r in (self.rate, self.workload.pace_rate()) if r]
        return min(rates) if rates else None

    def allowance(self) -> int | None:
        """Bytes that may move now: None for unlimited, 0 when the caller must wait."""
        rate = self.current_rate()
        now = time.monotonic()
        elapsed, self.last = now - self.last, now
        if rate is None:
            self.tokens = 0.0
            return None
        # A burst of 50 ms of traffic: few wake-ups, yet a smooth rate.
        burst = min(max(rate * 0.05, 1.0), float(RECV_SIZE))
        self.tokens = min(burst, self.tokens + elapsed * rate)
        return int(self.tokens)

    def delay(self) -> float:
        """Seconds until a byte may move (capped, so a change of rate is noticed soon)."""
        rate = self.current_rate()
        if rate is None:
            return 0.0
        return min(0.05, max(0.001, (1.0 - self.tokens) / rate))

    def used(self, count: int) -> None:
        if self.current_rate() is not None:
            self.tokens -= count

    def wait(self) -> int | None:
        """Blocks (up to the deadline) until some bytes may move; returns how many (None: any)."""
        while True:
            allowed = self.allowance()
            if allowed is None or allowed > 0:
                return allowed
            self.workload.sleep(self.delay())


# ---------------------------------------------------------------------------------------------
# Checking bodies and parsing responses


def first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


class StreamCheck:
    """Checks a body against the splitmix64 stream as it arrives: compares each piece with the
    reference bytes for the same offsets (remembering the first mismatch) and hashes both."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.reference = SplitMix64Stream(seed)
        self.received = 0
        self.got = hashlib.sha256()
        self.want = hashlib.sha256()
        self.mismatch_at: int | None = None

    def feed(self, data: bytes) -> None:
        expected = self.reference.read(len(data))
        self.got.update(data)
        self.want.update(expected)
        if self.mismatch_at is None and data != expected:
            self.mismatch_at = self.received + first_difference(data, expected)
            log(f"/bytes seed {self.seed}: first wrong byte at offset {self.mismatch_at}")
        self.received += len(data)

    def ok(self) -> bool:
        return self.mismatch_at is None and self.got.digest() == self.want.digest()


def parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("iso-8859-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or not fields[1].isdigit():
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ProtocolError("chunked response (not expected from these servers)")
    return int(fields[1]), headers


def content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise ProtocolError(f"bad Content-Length {value!r}")
    return int(value)


class Conn:
    """One blocking TCP connection whose I/O is bounded by the deadline and paced."""

    def __init__(self, workload: Workload, host: str, port: int, pacer: Pacer) -> None:
        self.workload = workload
        self.pacer = pacer
        self.buffer = bytearray()  # received, not yet consumed
        self.payload_sent = 0  # bytes sent with count=True
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self.sock = workload.new_socket(family)
        try:
            self.sock.settimeout(workload.remaining())
            self.sock.connect(address)
        except BaseException:
            self.sock.close()
            raise
        self.local_port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def _recv(self, limit: int) -> bytes:
        self.sock.settimeout(self.workload.remaining())
        return self.sock.recv(limit)

    def send(self, data: bytes, count: bool = False) -> None:
        """Sends all of data, paced; count: report the bytes to the workload as they go."""
        view = memoryview(data)
        while view:
            allowed = self.pacer.wait()
            piece = view if allowed is None else view[:allowed]
            self.sock.settimeout(self.workload.remaining())
            sent = self.sock.send(piece)
            self.pacer.used(sent)
            if count:
                self.payload_sent += sent
                self.workload.moved(sent)
            view = view[sent:]

    def read_head(self) -> tuple[int, dict[str, str]]:
        """The next final response head (1xx interim responses are skipped)."""
        while True:
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                if len(self.buffer) > HEAD_LIMIT:
                    raise ProtocolError("response head too long")
                data = self._recv(HEAD_RECV_SIZE)
                if not data:
                    raise Eof("eof before the response head" if not self.buffer else "eof inside the response head")
                self.buffer += data
            raw = bytes(self.buffer[:end])
            del self.buffer[:end + 4]
            status, headers = parse_head(raw)
            if not 100 <= status < 200:
                return status, headers

    def read_body(self, length: int | None, sink, count: bool = True) -> int:
        """Passes the next `length` body bytes (all until EOF when None) to sink, paced.
        Returns the number of bytes read; raises Eof when the body stops short."""
        got = 0
        if self.buffer:
            take = len(self.buffer) if length is None else min(length, len(self.buffer))
            piece = bytes(self.buffer[:take])
            del self.buffer[:take]
            got += self._deliver(piece, sink, count)
        while length is None or got < length:
            allowed = self.pacer.wait()
            limit = RECV_SIZE if allowed is None else min(allowed, RECV_SIZE)
            if length is not None:
                limit = min(limit, length - got)
            data = self._recv(limit)
            if not data:
                if length is None:
                    return got
                raise Eof(f"eof after {got} of {length} body bytes")
            self.pacer.used(len(data))
            got += self._deliver(data, sink, count)
        return got

    def _deliver(self, data: bytes, sink, count: bool) -> int:
        sink(data)
        if count:
            self.workload.moved(len(data))
        return len(data)


def request(method: str, target: str, host: str, length: int | None = None, close: bool = False) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    if length is not None:
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {length}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post_sha256(conn: Conn, host: str, seed: int, size: int, chunk: int, pause: float) -> tuple[str, str]:
    """Sends POST /sha256 with `size` splitmix64 bytes, `chunk` at a time with `pause` seconds
    between chunks; returns (our digest, the server's answer without its newline)."""
    body = SplitMix64Stream(seed)
    digest = hashlib.sha256()
    conn.send(request("POST", "/sha256", host, length=size))
    left = size
    while left:
        piece = body.read(min(chunk, left))
        digest.update(piece)
        conn.send(piece, count=True)
        left -= len(piece)
        if left and pause:
            conn.workload.sleep(pause)
    status, headers = conn.read_head()
    answer = bytearray()
    length = content_length(headers)
    if length is None or length > HEAD_LIMIT:
        raise ProtocolError(f"/sha256 answered with Content-Length {length}")
    conn.read_body(length, answer.extend, count=False)
    conn.workload.moved(len(answer))
    if status != 200:
        raise ProtocolError(f"/sha256 answered {status}: {bytes(answer[:100])!r}")
    return digest.hexdigest(), answer.decode("ascii", "replace").rstrip("\n")


# ---------------------------------------------------------------------------------------------
# The parts. Each declares its expected bytes when built, does its work in run(), and describes
# the outcome in report(): "ok", plus bytes_expected/bytes_ok/lost_or_corrupted for the
# verified parts, plus "failures" (strings) for the combined report.


class DownloadsPart:
    name = "downloads"

    class Transfer:
        def __init__(self, index: int, size: int, seed: int, pacer: Pacer) -> None:
            self.index, self.size, self.seed, self.pacer = index, size, seed, pacer
            self.sock: socket.socket | None = None
            self.local_port: int | None = None
            self.state = "connect"  # connect -> send -> head -> body -> done
            self.outgoing = b""
            self.head = bytearray()
            self.check = StreamCheck(seed)
            self.error: str | None = None
            self.finished_at: float | None = None
            self.interest = 0  # selector events currently registered

        def report(self) -> dict:
            complete = self.error is None and self.state == "done"
            return {
                "index": self.index, "seed": self.seed, "size": self.size, "local_port": self.local_port,
                "received": self.check.received, "ok": self.ok, "error": self.error,
                "mismatch_at": self.check.mismatch_at, "sha256": self.check.got.hexdigest(),
                "expected_sha256": self.check.want.hexdigest() if complete else None,
                "finished_at": _round(self.finished_at),
            }

        @property
        def ok(self) -> bool:
            return self.error is None and self.state == "done" and self.check.ok()

    def __init__(self, workload: Workload, host: str, port: int, count: int, sizes: tuple[int, int],
                 seed: int, rate: float | None) -> None:
        self.workload, self.host, self.port = workload, host, port
        chooser = random.Random(f"downloads/{seed}")  # str seeds are stable across runs
        self.transfers = [
            self.Transfer(i, chooser.randint(*sizes), (seed + i) & MASK, Pacer(workload, rate))
            for i in range(count)
        ]
        workload.expect(sum(t.size for t in self.transfers))

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            family, _, _, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        except OSError as error:
            for transfer in self.transfers:
                self._finish(transfer, selector, describe(error))
            return
        active = []
        for transfer in self.transfers:
            try:
                transfer.sock = self.workload.new_socket(family)
                transfer.sock.setblocking(False)
                code = transfer.sock.connect_ex(address)  # normally EINPROGRESS: the outcome shows as writability
                if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                    raise OSError(code, os.strerror(code))
                transfer.outgoing = request("GET", f"/bytes/{transfer.size}?seed={transfer.seed}", self.host)
                active.append(transfer)
            except OSError as error:
                self._finish(transfer, selector, describe(error))

        while active:
            if time.monotonic() >= self.workload.deadline:
                for transfer in active:
                    self._finish(transfer, selector, "timeout")
                break
            # Register each socket for what it can do now. A paced reader that is out of
            # tokens is not registered at all: its data waits in the kernel, and once its
            # receive window is full the server's sends stall.
            wake = 0.5
            for transfer in active:
                wanted = selectors.EVENT_WRITE if transfer.state in ("connect", "send") else selectors.EVENT_READ
                if transfer.state == "body" and transfer.pacer.allowance() == 0:
                    wanted = 0
                    wake = min(wake, transfer.pacer.delay())
                self._register(selector, transfer, wanted)
            wake = min(wake, max(0.0, self.workload.deadline - time.monotonic()))
            for key, events in selector.select(timeout=wake):
                transfer = key.data
                try:
                    self._step(transfer)
                except Exception as error:  # noqa: BLE001 - every failure is reported per transfer
                    self._finish(transfer, selector, describe(error))
                    continue
                if transfer.state == "done":
                    self._finish(transfer, selector, None)
            active = [t for t in active if t.finished_at is None]
        selector.close()

    def _register(self, selector: selectors.BaseSelector, transfer: "DownloadsPart.Transfer", events: int) -> None:
        if events == transfer.interest:
            return
        if transfer.interest == 0:
            selector.register(transfer.sock, events, transfer)
        elif events == 0:
            selector.unregister(transfer.sock)
        else:
            selector.modify(transfer.sock, events, transfer)
        transfer.interest = events

    def _step(self, transfer: "DownloadsPart.Transfer") -> None:
        sock = transfer.sock
        if transfer.state == "connect":
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
            transfer.local_port = sock.getsockname()[1]
            transfer.state = "send"
        if transfer.state == "send":
            sent = sock.send(transfer.outgoing)
            transfer.outgoing = transfer.outgoing[sent:]
            if not transfer.outgoing:
                transfer.state = "head"
            return
        if transfer.state == "head":
            data = sock.recv(HEAD_RECV_SIZE)
            if not data:
                raise Eof("eof before the response head")
            transfer.head += data
            end = transfer.head.find(b"\r\n\r\n")
            if end < 0:
                if len(transfer.head) > HEAD_LIMIT:
                    raise ProtocolError("response head too long")
                return
            status, headers = parse_head(bytes(transfer.head[:end]))
            if status != 200:
                raise ProtocolError(f"status {status}")
            if content_length(headers) != transfer.size:
                raise ProtocolError(f"Content-Length {headers.get('content-length')} for {transfer.size} bytes")
            rest = bytes(transfer.head[end + 4:])
            transfer.head = bytearray()
            transfer.state = "body"
            if len(rest) > transfer.size:
                raise ProtocolError(f"{len(rest) - transfer.size} bytes beyond the body")
            self._body(transfer, rest)
            return
        # body
        allowed = transfer.pacer.allowance()
        limit = RECV_SIZE if allowed is None else min(max(allowed, 1), RECV_SIZE)
        data = sock.recv(min(limit, transfer.size - transfer.check.received))
        if not data:
            raise Eof(f"eof after {transfer.check.received} bytes")
        transfer.pacer.used(len(data))
        self._body(transfer, data)

    def _body(self, transfer: "DownloadsPart.Transfer", data: bytes) -> None:
        if data:
            transfer.check.feed(data)
            self.workload.moved(len(data))
        if transfer.check.received == transfer.size:
            transfer.state = "done"

    def _finish(self, transfer: "DownloadsPart.Transfer", selector: selectors.BaseSelector, error: str | None) -> None:
        transfer.error = error
        transfer.finished_at = self.workload.elapsed()
        if transfer.sock is not None:
            if transfer.interest:
                selector.unregister(transfer.sock)
                transfer.interest = 0
            transfer.sock.close()
        if error is not None or not transfer.ok:
            log(f"download {transfer.index} (seed {transfer.seed}, {transfer.size} bytes, port "
                f"{transfer.local_port}): {error or 'wrong content'} ({transfer.check.received} bytes received)")

    def report(self) -> dict:
        transfers = [t.report() for t in self.transfers]
        expected = sum(t.size for t in self.transfers)
        good = sum(t.size for t in self.transfers if t.ok)
        failures = [f"downloads[{t['index']}] port {t['local_port']}: "
                    f"{t['error'] or 'content differs at offset %s' % t['mismatch_at']}"
                    for t in transfers if not t["ok"]]
        return {"ok": not failures, "count": len(transfers), "transfers": transfers,
                "bytes_expected": expected, "bytes_ok": good, "lost_or_corrupted": expected - good,
                "failures": failures}


class UploadPart:
    name = "upload"

    def __init__(self, workload: Workload, host: str, port: int, size: int, chunk: int, pause_ms: float,
                 seed: int) -> None:
        self.workload, self.host, self.port = workload, host, port
        self.size, self.chunk, self.pause = size, max(1, chunk), pause_ms / 1000.0
        self.seed = (seed + UPLOAD_SEED) & MASK
        self.local_port = None
        self.sent = 0
        self.digest = self.answer = self.error = None
        workload.expect(size + DIGEST_ANSWER)

    def run(self) -> None:
        conn = None
        try:
            conn = Conn(self.workload, self.host, self.port, Pacer(self.workload))
            self.local_port = conn.local_port
            self.digest, self.answer = post_sha256(conn, self.host, self.seed, self.size, self.chunk, self.pause)
            if self.answer != self.digest:
                self.error = f"server digest {self.answer[:80]!r} != {self.digest}"
        except Exception as error:  # noqa: BLE001
            self.error = describe(error)
        finally:
            if conn is not None:
                self.sent = conn.payload_sent
                conn.close()
        if self.error:
            log(f"upload (port {self.local_port}): {self.error} after sending {self.sent} of {self.size} bytes")

    def report(self) -> dict:
        ok = self.error is None
        expected = self.size + DIGEST_ANSWER
        return {"ok": ok, "local_port": self.local_port, "size": self.size, "sent": self.sent,
                "chunk": self.chunk, "pause_ms": self.pause * 1000, "seed": self.seed,
                "sha256": self.digest, "server_sha256": self.answer, "error": self.error,
                "bytes_expected": expected, "bytes_ok": expected if ok else 0,
                "lost_or_corrupted": 0 if ok else expected,
                "failures": [] if ok else [f"upload port {self.local_port}: {self.error}"]}


class KeepalivePart:
    name = "keepalive"
    KINDS = ("bytes", "sha256", "version")

    def __init__(self, workload: Workload, host: str, port: int, requests: int, sizes: tuple[int, int],
                 pause_ms: float, seed: int, kinds: tuple[str, ...] = KINDS) -> None:
        self.workload, self.host, self.port, self.pause = workload, host, port, pause_ms / 1000.0
        chooser = random.Random(f"keepalive/{seed}")
        self.plan = []
        for i in range(requests):
            kind = kinds[i % len(kinds)]
            size = chooser.randint(*sizes) if kind != "version" else 0
            # Payload bytes this request moves: /version's length is not known beforehand.
            expected = {"bytes": size, "sha256": size + DIGEST_ANSWER, "version": 0}[kind]
            self.plan.append({"index": i, "kind": kind, "size": size, "seed": (seed + KEEPALIVE_SEEDS + i) & MASK,
                              "expected": expected, "ok": False, "error": "not sent", "at": None})
        self.local_port = self.local_port_end = None
        self.versions: list[str] = []
        workload.expect(sum(r["expected"] for r in self.plan))

    def run(self) -> None:
        conn = None
        try:
            conn = Conn(self.workload, self.host, self.port, Pacer(self.workload))
            self.local_port = conn.local_port
        except Exception as error:  # noqa: BLE001
            if self.plan:
                self.plan[0]["error"] = describe(error)
            log(f"keepalive: connect: {describe(error)}")
            return
        try:
            for step in self.plan:
                if step["index"]:
                    try:
                        self.workload.sleep(self.pause)
                    except DeadlineExceeded:
                        step["error"] = "timeout"
                        break
                step["at"] = _round(self.workload.elapsed())
                try:
                    self._one(conn, step)
                    step["error"] = None
                    step["ok"] = True
                except Exception as error:  # noqa: BLE001
                    step["error"] = describe(error)
                    log(f"keepalive request {step['index']} ({step['kind']} {step['size']}, port "
                        f"{self.local_port}): {step['error']}")
                    break  # the connection's state is unknown: no further request on it
            try:
                self.local_port_end = conn.sock.getsockname()[1]
            except OSError:
                pass
        finally:
            conn.close()

    def _one(self, conn: Conn, step: dict) -> None:
        kind, size = step["kind"], step["size"]
        if kind == "sha256":
            digest, answer = post_sha256(conn, self.host, step["seed"], size, 64 * 1024, 0.0)
            if answer != digest:
                raise ProtocolError(f"server digest {answer[:80]!r} != {digest}")
        elif kind == "bytes":
            conn.send(request("GET", f"/bytes/{size}?seed={step['seed']}", self.host))
            status, headers = conn.read_head()
            if status != 200:
                raise ProtocolError(f"status {status}")
            if content_length(headers) != size:
                raise ProtocolError(f"Content-Length {headers.get('content-length')} for {size} bytes")
            check = StreamCheck(step["seed"])
            conn.read_body(size, check.feed)
            if not check.ok():
                raise ProtocolError(f"content differs at offset {check.mismatch_at}")
        else:
            conn.send(request("GET", "/version", self.host))
            status, headers = conn.read_head()
            length = content_length(headers)
            if length is None or length > HEAD_LIMIT:
                raise ProtocolError(f"/version Content-Length {length}")
            body = bytearray()
            conn.read_body(length, body.extend, count=False)
            if status != 200 or not body.endswith(b"\n") or len(body) < 2:
                raise ProtocolError(f"/version answered {status} {bytes(body[:80])!r}")
            version = body.decode("utf-8", "replace").rstrip("\n")
            step["version"] = version
            if version not in self.versions:
                self.versions.append(version)
        if conn.buffer:
            raise ProtocolError(f"{len(conn.buffer)} unexpected bytes after the response")

    def report(self) -> dict:
        expected = sum(r["expected"] for r in self.plan)
        good = sum(r["expected"] for r in self.plan if r["ok"])
        failures = [f"keepalive[{r['index']}] {r['kind']} port {self.local_port}: {r['error']}"
                    for r in self.plan if not r["ok"] and r["error"] != "not sent"]
        unsent = sum(r["error"] == "not sent" for r in self.plan)
        if unsent:
            failures.append(f"keepalive: {unsent} of {len(self.plan)} requests not sent")
        if self.local_port is not None and self.local_port_end not in (None, self.local_port):
            failures.append(f"keepalive: local port changed {self.local_port} -> {self.local_port_end}")
        return {"ok": not failures, "local_port": self.local_port, "local_port_end": self.local_port_end,
                "completed": sum(r["ok"] for r in self.plan), "requests": self.plan, "versions": self.versions,
                "bytes_expected": expected, "bytes_ok": good, "lost_or_corrupted": expected - good,
                "failures": failures}


class StaticPart:
    name = "static"

    def __init__(self, workload: Workload, host: str, port: int, path: str, sha256: str) -> None:
        self.workload, self.host, self.port = workload, host, port
        self.path = path if path.startswith("/") else "/" + path
        self.want = sha256.strip().lower()
        self.size = None  # from Content-Length
        self.received = 0
        self.local_port = self.digest = self.error = None

    def run(self) -> None:
        conn = None
        digest = hashlib.sha256()

        def sink(data: bytes) -> None:
            digest.update(data)
            self.received += len(data)
        try:
            conn = Conn(self.workload, self.host, self.port, Pacer(self.workload))
            self.local_port = conn.local_port
            conn.send(request("GET", self.path, self.host, close=True))
            status, headers = conn.read_head()
            if status != 200:
                raise ProtocolError(f"status {status}")
            self.size = content_length(headers)
            if self.size is not None:
                self.workload.expect(self.size)  # the workload's total grows by this file
                conn.read_body(self.size, sink)
            else:  # no length: the body ends at EOF, and nothing can be said to be missing
                conn.read_body(None, sink)
                self.size = self.received
            self.digest = digest.hexdigest()
            if self.digest != self.want:
                self.error = f"sha256 {self.digest} != {self.want}"
        except Exception as error:  # noqa: BLE001
            self.error = describe(error)
            self.digest = digest.hexdigest()
        finally:
            if conn is not None:
                conn.close()
        if self.error:
            log(f"static {self.path} (port {self.local_port}): {self.error} after {self.received} bytes")

    def report(self) -> dict:
        ok = self.error is None
        expected = self.size or 0
        return {"ok": ok, "local_port": self.local_port, "port": self.port, "path": self.path,
                "size": self.size, "received": self.received, "sha256": self.digest, "expected_sha256": self.want,
                "error": self.error, "bytes_expected": expected, "bytes_ok": expected if ok else 0,
                "lost_or_corrupted": 0 if ok else expected,
                "failures": [] if ok else [f"static {self.path} port {self.local_port}: {self.error}"]}


class RandomPart:
    name = "random"

    def __init__(self, workload: Workload, host: str, port: int, size: int, allow_complete: bool) -> None:
        self.workload, self.host, self.port, self.size = workload, host, port, size
        self.allow_complete = allow_complete
        self.received = 0
        self.local_port = None
        self.outcome = "error"
        self.detail = None
        self.finished_at = None
        workload.expect(size)

    def run(self) -> None:
        conn = None

        def sink(data: bytes) -> None:
            self.received += len(data)
        try:
            conn = Conn(self.workload, self.host, self.port, Pacer(self.workload))
            self.local_port = conn.local_port
            conn.send(request("GET", f"/random/{self.size}", self.host))
            status, headers = conn.read_head()
            if status != 200 or content_length(headers) != self.size:
                raise ProtocolError(f"status {status}, Content-Length {headers.get('content-length')}")
            conn.read_body(self.size, sink)
            self.outcome = "complete"
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, Eof) as error:
            self.outcome, self.detail = "reset", describe(error)
        except (DeadlineExceeded, TimeoutError):
            self.outcome = "timeout"
        except Exception as error:  # noqa: BLE001
            self.outcome, self.detail = "error", describe(error)
        finally:
            if conn is not None:
                conn.close()
        self.finished_at = self.workload.elapsed()
        log(f"random (port {self.local_port}): {self.outcome} after {self.received} of {self.size} bytes"
            + (f" ({self.detail})" if self.detail else ""))

    @property
    def ok(self) -> bool:
        return self.outcome == "reset" or (self.allow_complete and self.outcome == "complete")

    def report(self) -> dict:
        return {"ok": self.ok, "local_port": self.local_port, "size": self.size, "received": self.received,
                "outcome": self.outcome, "detail": self.detail, "allow_complete": self.allow_complete,
                "finished_at": _round(self.finished_at),
                "failures": [] if self.ok else [f"random port {self.local_port}: outcome {self.outcome}"
                                                + (f" ({self.detail})" if self.detail else "")]}


# ---------------------------------------------------------------------------------------------
# Command line


def add_common(parser: argparse.ArgumentParser, service_port: int = 80) -> None:
    parser.add_argument("--host", required=True, help="service address, e.g. 10.77.0.2")
    parser.add_argument("--port", type=int, default=service_port, help=f"TCP port (default {service_port})")
    parser.add_argument("--seed", type=int, default=1, help="base of seeds and size choices (default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="overall deadline in seconds (default 120)")
    parser.add_argument("--trigger", type=parse_trigger, action="append", default=[], metavar="FRACTION:COMMAND",
                        help="run COMMAND once the workload reaches FRACTION of its bytes (repeatable)")
    parser.add_argument("--pace-until-trigger", type=parse_size, default=None, metavar="BYTES_PER_SEC",
                        help="limit each transfer to this rate until every trigger has run")
    parser.add_argument("--rcvbuf", type=parse_size, default=None, metavar="BYTES", help="SO_RCVBUF of each socket")


# Options of `mix` that also answer to their plain name, since no other part has one like it.
UNPREFIXED_ALIASES = {"requests", "chunk", "path", "sha256", "allow-complete"}


def add_options(parser: argparse.ArgumentParser, part: str, prefix: str, required: bool) -> None:
    """The options of one part; `prefix` (e.g. 'upload-') keeps them apart in `mix`."""
    def option(name: str, **kwargs) -> None:
        flags = [f"--{prefix}{name}"]
        if prefix and name in UNPREFIXED_ALIASES:
            flags.append(f"--{name}")
        parser.add_argument(*flags, dest=f"{prefix}{name}".replace("-", "_"), **kwargs)

    if part == "downloads":
        option("count", type=int, default=4, help="concurrent downloads (default 4)")
        option("sizes", type=parse_range, default=parse_range("1M:8M"), metavar="MIN:MAX",
               help="size range (default 1M:8M)")
        option("rate", type=parse_size, default=None, metavar="BYTES_PER_SEC", help="per-connection rate limit")
    elif part == "upload":
        option("size", type=parse_size, required=required, default=parse_size("4M"), help="body size (mix default 4M)")
        option("chunk", type=parse_size, default=64 * 1024, help="bytes per send (default 64K)")
        option("pause-ms", type=float, default=20.0, help="pause between chunks (default 20)")
    elif part == "keepalive":
        option("requests", type=int, default=12, help="requests on the connection (default 12)")
        option("sizes", type=parse_range, default=parse_range("100K:4M"), metavar="MIN:MAX",
               help="sizes of GET /bytes and POST /sha256 bodies (default 100K:4M)")
        option("pause-ms", type=float, default=100.0, help="pause between requests (default 100)")
        option("kinds", type=parse_kinds, default=KeepalivePart.KINDS, metavar="LIST",
               help="requests to cycle through, of bytes,sha256,version (default all three; an upgrade "
                    "test leaves version out: a session that asked the old guest's /version cannot be "
                    "replayed into a guest that answers another)")
    elif part == "static":
        option("path", required=required, default=None, help="file path on the static server")
        option("sha256", required=required, default=None, help="its expected SHA-256 (hex)")
    elif part == "random":
        option("size", type=parse_size, required=required, default=parse_size("32M"), help="bytes to ask for (mix default 32M)")
        option("allow-complete", action="store_true", help="a complete transfer passes too")


def parse_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = set(kinds) - set(KeepalivePart.KINDS)
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"use some of {','.join(KeepalivePart.KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for part in PARTS:
        sub = commands.add_parser(part, help=f"the {part} workload")
        add_common(sub, 8080 if part == "static" else 80)
        add_options(sub, part, "", True)
    mix = commands.add_parser("mix", help="several parts at once, one thread each")
    add_common(mix)
    for part, prefix in (("downloads", ""), ("upload", "upload-"), ("keepalive", "keepalive-"),
                         ("static", "static-"), ("random", "random-")):
        add_options(mix, part, prefix, False)
    mix.add_argument("--static-port", type=int, default=8080, help="static server port (default 8080)")
    mix.add_argument("--only", default=None, metavar="LIST", help=f"comma-separated parts to run ({','.join(PARTS)})")
    mix.add_argument("--skip", default="", metavar="LIST", help="comma-separated parts to leave out")
    return parser


def build_parts(args: argparse.Namespace, workload: Workload, fail) -> list:
    """The part objects for the command line (constructing them declares their bytes);
    `fail(message)` reports a bad combination of options and exits."""
    def get(name: str, prefix: str):
        return getattr(args, f"{prefix}{name}".replace("-", "_"))

    if args.command == "mix":
        def split(text: str) -> list[str]:
            names = [n.strip() for n in text.split(",") if n.strip()]
            unknown = set(names) - set(PARTS)
            if unknown:
                fail(f"unknown part(s) {', '.join(sorted(unknown))}")
            return names
        chosen = split(args.only) if args.only else [p for p in PARTS if p != "static" or args.static_path]
        chosen = [p for p in chosen if p not in split(args.skip)]
        if "static" in chosen and not (args.static_path and args.static_sha256):
            fail("static needs --static-path and --static-sha256")
        prefixes = {"downloads": "", "upload": "upload-", "keepalive": "keepalive-", "random": "random-",
                    "static": "static-"}
        if not chosen:
            fail("no part left to run")
    else:
        chosen = [args.command]
        prefixes = {args.command: ""}

    parts = []
    for part in chosen:
        prefix = prefixes[part]
        if part == "downloads":
            parts.append(DownloadsPart(workload, args.host, args.port, get("count", prefix), get("sizes", prefix),
                                   args.seed, get("rate", prefix)))
        elif part == "upload":
            parts.append(UploadPart(workload, args.host, args.port, get("size", prefix), get("chunk", prefix),
                                get("pause-ms", prefix), args.seed))
        elif part == "keepalive":
            parts.append(KeepalivePart(workload, args.host, args.port, get("requests", prefix), get("sizes", prefix),
                                   get("pause-ms", prefix), args.seed, get("kinds", prefix)))
        elif part == "static":
            port = args.static_port if args.command == "mix" else args.port
            parts.append(StaticPart(workload, args.host, port, get("path", prefix), get("sha256", prefix)))
        elif part == "random":
            parts.append(RandomPart(workload, args.host, args.port, get("size", prefix), get("allow-complete", prefix)))
    return parts


def run_part(part, crashes: dict) -> None:
    try:
        part.run()
    except Exception as error:  # noqa: BLE001 - a bug must still produce a report
        crashes[part.name] = f"crashed: {type(error).__name__}: {error}"
        log(f"{part.name}: {crashes[part.name]}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    workload = Workload(args.timeout, args.trigger, args.pace_until_trigger, args.rcvbuf)
    parts = build_parts(args, workload, parser.error)
    log(f"{args.command}: {', '.join(p.name for p in parts)} against {args.host}; "
        f"{workload.expected} bytes expected, {len(workload.triggers)} trigger(s)")
    workload.begin()  # fraction-0 triggers fire now

    crashes: dict[str, str] = {}
    threads = [threading.Thread(target=run_part, args=(part, crashes), name=part.name, daemon=True)
               for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Parts stop at the deadline themselves; the grace covers a final read or close.
        thread.join(max(0.0, workload.deadline + 10 - time.monotonic()))
    for trigger in workload.triggers:
        trigger.finish(workload.deadline)

    reports, failures = {}, []
    totals = {"bytes_expected": 0, "bytes_ok": 0, "lost_or_corrupted": 0}
    for part, thread in zip(parts, threads):
        report = part.report()
        if thread.is_alive():
            report["ok"] = False
            report["failures"].append(f"{part.name}: still running after the deadline")
        if part.name in crashes:
            report["ok"] = False
            report["failures"].append(f"{part.name}: {crashes[part.name]}")
        failures += report["failures"]
        for key in totals:
            totals[key] += report.get(key, 0)
        reports[part.name] = report
    for trigger in workload.triggers:
        if not trigger.ok:
            state = ("never fired" if trigger.fired_at is None else trigger.error
                     or f"exit status {trigger.status}")
            failures.append(f"trigger {trigger.fraction}:{trigger.command!r}: {state}")
    totals["triggers_fired"] = sum(t.fired_at is not None for t in workload.triggers)
    totals["triggers"] = len(workload.triggers)
    totals["bytes_moved"] = workload.done

    ok = not failures
    result = {"ok": ok, "command": args.command, "host": args.host, "elapsed": round(workload.elapsed(), 3),
              "timeout": args.timeout, "pace_until_trigger": args.pace_until_trigger, "totals": totals,
              "triggers": [t.report() for t in workload.triggers], "parts": reports, "failures": failures}
    print(json.dumps(result), flush=True)
    log(("ok" if ok else f"FAILED: {'; '.join(failures)}") + f" ({result['elapsed']}s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
