#!/usr/bin/python3
"""Range-resume benchmark: recovery cost against how deep a client is into an open response.

For each depth D and each variant, opens ONE connection from the pair's client namespace (small
SO_RCVBUF, set before connect), sends the variant's GET, reads the response until D body bytes
are in and stops reading; then `ftvm inject kernel-panic`, and once the daemon has declared the
primary failed, reads the rest to the end on the same connection and compares the whole body's
SHA-256 with an independent reference. Variants:

- `range`: `GET /bytes/(D+TAIL)?seed=S` (demo service, port 80): strong ETag and
  `Accept-Ranges: bytes`, so the replay asks the new guest for `Range: bytes=N-` with `If-Range`
  and splices its 206 at N;
- `regenerate`: `GET /chunked/(D+TAIL)?seed=S`: the same payload bytes, chunked, no ETag: the
  replay regenerates every byte the client has and checks its CRC;
- `nginx`: `GET /splitmix-32M.bin` on port 8081 (Debian's nginx, a static file with nginx's
  ETag), for depths below 32 MiB only.

References: Tests/tools/splitmix.py (splitmix64) for /bytes and /chunked (the client decodes the
chunked framing itself), the image's own copy of the file for nginx. Per case the daemon's
numbers come from `ftvm status --json` (`lastRecovery`: detection, the `replay` and `first-byte`
phases, the connection's `splicedMillis`, `regeneratedBytes`, `resumedAt`, reset reasons), and
the client's from its own monotonic clock (injection -> first byte after the failover). Writes
docs/range-resume-bench.md.

The pair is brought up, driven and torn down the way scripts/bench_replay.py does it (its Pair
and Client helpers are imported from there).

usage: scripts/bench_range_resume.py [--depths 1M,100M,2G] [--variants range,regenerate,nginx]
                                     [--tail 64M] [--seed S] [--rcvbuf BYTES] [--name NAME]
       scripts/bench_range_resume.py client ...   (internal: the client, run inside the namespace)
"""
import argparse
import datetime
import errno
import fcntl
import hashlib
import json
import os
import select
import shlex
import socket
import struct
import subprocess
import sys
import termios
import time
import zlib

sys.dont_write_bytecode = True  # importing bench_replay / splitmix must leave no __pycache__

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.abspath(__file__)
DOC = os.path.join(REPO, "docs", "range-resume-bench.md")
NGINX_FILE = "/var/lib/ftvm/images/default/www/splitmix-32M.bin"  # the image's copy of nginx's file
NGINX_PATH = "/splitmix-32M.bin"
NGINX_PORT = 8081
DEMO_PORT = 80
BLOCK = 1 << 20  # body bytes per CRC32 block: a wrong byte is located to its MiB
VARIANTS = ("range", "regenerate", "nginx")
GOAL = 1.2  # the goal: range detect -> first byte at the deepest depth within 1.2x the shallowest


def parse_size(text):
    """`1M`, `100M`, `2G`, `64K` (binary multiples) or plain bytes."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(digits) * scale


def size_label(n):
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


# ---------------------------------------------------------------------------------------------
# The client: runs inside the pair's namespace, one connection, JSON lines with the parent.
#   client -> parent  {"ready": ...}       head read, D body bytes in, reading stopped
#   parent -> client  go                   the fault is in and detected: read the rest
#   client -> parent  {"result": ...}      bytes, SHA-256, per-MiB CRC32s, times, error
#   parent -> client  quit
# ---------------------------------------------------------------------------------------------

class Body:
    """The body's payload bytes as they come: count, SHA-256, CRC32 per BLOCK."""

    def __init__(self):
        self.count = 0
        self.digest = hashlib.sha256()
        self.blocks = []  # CRC32 of each full BLOCK
        self.crc = 0
        self.filled = 0  # bytes in the current block

    def take(self, data):
        self.digest.update(data)
        self.count += len(data)
        view = memoryview(data)
        while view:
            n = min(len(view), BLOCK - self.filled)
            self.crc = zlib.crc32(view[:n], self.crc)
            self.filled += n
            view = view[n:]
            if self.filled == BLOCK:
                self.blocks.append(self.crc)
                self.crc, self.filled = 0, 0

    def block_crcs(self):
        return self.blocks + ([self.crc] if self.filled else [])


class ChunkedDecoder:
    """Transfer-Encoding: chunked (RFC 9112 §7.1), fed raw bytes, handing payload to `body`."""

    def __init__(self, body):
        self.body = body
        self.state = "size"  # size, data, data-crlf, trailer, done
        self.line = b""  # a size or trailer line not ended yet
        self.left = 0  # payload bytes left in the current chunk
        self.trailer = []

    def feed(self, data):
        """Raises ValueError on a framing error; returns bytes left over past the end (none expected)."""
        view = memoryview(data)
        i = 0
        while i < len(data):
            if self.state == "data":
                n = min(self.left, len(data) - i)
                self.body.take(view[i:i + n])
                self.left -= n
                i += n
                if self.left == 0:
                    self.state = "data-crlf"
                continue
            if self.state == "done":
                return data[i:]
            end = data.find(b"\n", i)
            if end < 0:
                self.line += data[i:]
                if len(self.line) > 8192:
                    raise ValueError("chunk line too long")
                break
            line = self.line + data[i:end + 1]
            self.line = b""
            i = end + 1
            if not line.endswith(b"\r\n"):
                raise ValueError(f"bare LF in chunk framing: {line[:40]!r}")
            line = line[:-2]
            if self.state == "data-crlf":
                if line:
                    raise ValueError(f"chunk data not followed by CRLF: {line[:40]!r}")
                self.state = "size"
            elif self.state == "size":
                size = line.split(b";", 1)[0].strip()
                try:
                    self.left = int(size, 16)
                except ValueError:
                    raise ValueError(f"bad chunk size line {line[:40]!r}") from None
                self.state = "data" if self.left else "trailer"
            elif self.state == "trailer":
                if line:
                    self.trailer.append(line.decode("latin-1"))
                else:
                    self.state = "done"
        return b""

    @property
    def done(self):
        return self.state == "done"


class Download:
    def __init__(self, options):
        self.options = options
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect: the window scale is fixed by the SYN.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, options.rcvbuf)
        self.body = Body()
        self.length = None  # Content-Length, when the response has one
        self.chunked = None
        self.head = {}
        self.status = None
        self.raw = 0  # raw response bytes read after the head (framing included)
        self.error = None

    def fail(self, what):
        expected = self.length if self.length is not None else self.options.expect
        self.error = f"{what} after {self.body.count} of {expected} body bytes"

    def done(self):
        return self.decoder.done if self.chunked else self.body.count >= self.length

    def feed(self, data):
        self.raw += len(data)
        if self.chunked:
            extra = self.decoder.feed(data)
        else:
            take = min(len(data), self.length - self.body.count)
            self.body.take(data[:take])
            extra = data[take:]
        if extra:
            raise ValueError(f"{len(extra)} bytes past the end of the response")

    def open(self):
        o = self.options
        self.sock.settimeout(o.timeout)
        self.sock.connect((o.address, o.port))
        self.local_port = self.sock.getsockname()[1]
        self.sock.sendall(f"GET {o.path} HTTP/1.1\r\nHost: {o.address}\r\n\r\n".encode())
        started = time.monotonic()
        buffered = b""
        while b"\r\n\r\n" not in buffered:
            data = self.sock.recv(256)
            if not data:
                raise ConnectionError("closed before the response head ended")
            buffered += data
        head, rest = buffered.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = lines[0]
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.head[name.strip().lower()] = value.strip()
        if not self.status.startswith("HTTP/1.1 200"):
            raise ConnectionError(f"status line {self.status!r}")
        self.chunked = "chunked" in self.head.get("transfer-encoding", "").lower()
        if self.chunked:
            self.decoder = ChunkedDecoder(self.body)
        elif "content-length" in self.head:
            self.length = int(self.head["content-length"])
        else:
            raise ConnectionError("neither chunked nor a Content-Length")
        self.feed(rest)
        # Never more raw bytes than payload still wanted: framing only makes it less payload, so
        # the body stops at exactly D bytes and the rest stays the server's to send.
        while self.body.count < o.depth:
            data = self.sock.recv(min(65536, o.depth - self.body.count))
            if not data:
                raise ConnectionError("closed before the depth was reached")
            self.feed(data)
        return time.monotonic() - started

    def read_rest(self):
        """Reads to the end; returns the times of the first read with bytes received after the
        fault (the socket's queue then is what the old primary sent) and of the last."""
        self.buffered = struct.unpack("i", fcntl.ioctl(self.sock, termios.FIONREAD, b"\0" * 4))[0]
        self.sock.setblocking(False)
        after, first_new, last = 0, None, None
        self.error_at = None
        deadline = time.monotonic() + self.options.timeout
        while not self.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail("timed out")
                break
            ready, _, _ = select.select([self.sock], [], [], min(remaining, 1.0))
            if not ready:
                continue
            try:
                data = self.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError as error:
                self.error_at = time.monotonic()
                self.fail(error.strerror or str(error))  # ECONNRESET: the replay gave up on it
                break
            now = time.monotonic()
            if not data:
                self.error_at = now
                self.fail("closed")
                break
            after += len(data)
            if after > self.buffered and first_new is None:
                first_new = now
            last = now
            try:
                self.feed(data)
            except ValueError as error:
                self.fail(str(error))
                break
        return first_new, last


def client(argv):
    parser = argparse.ArgumentParser(prog="bench_range_resume.py client")
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--depth", type=int, required=True)
    parser.add_argument("--expect", type=int, required=True, help="the whole body's length")
    parser.add_argument("--rcvbuf", type=int, default=65536)
    parser.add_argument("--timeout", type=float, default=120)
    options = parser.parse_args(argv)

    d = Download(options)
    try:
        took = d.open()
    except (OSError, ValueError) as error:
        print(json.dumps({"ready": False, "error": f"{error} (after {d.body.count} body bytes)"}), flush=True)
        return
    print(json.dumps({"ready": True, "port": d.local_port, "status": d.status, "head": d.head,
                      "chunked": d.chunked, "bodyBytes": d.body.count, "seconds": round(took, 3)}), flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    go = time.monotonic()
    first_new, last = d.read_rest()
    if d.error is None and d.body.count != options.expect:
        d.fail(f"body of {d.body.count} bytes, expected {options.expect}")
    print(json.dumps({"result": {
        "go": go, "firstNew": first_new, "last": last, "errorAt": d.error_at, "buffered": d.buffered, "bodyBytes": d.body.count,
        "sha256": d.body.digest.hexdigest(), "blocks": d.body.block_crcs(), "error": d.error,
        "trailer": d.decoder.trailer if d.chunked else None}}), flush=True)
    sys.stdin.readline()  # quit (or EOF: the parent is gone)
    d.sock.close()


# ---------------------------------------------------------------------------------------------
# The parent.
# ---------------------------------------------------------------------------------------------

class References:
    """SHA-256 and per-BLOCK CRC32s of the expected bodies, each computed once."""

    def __init__(self):
        self.known = {}
        sys.path.insert(0, os.path.join(REPO, "Tests", "tools"))
        from splitmix import SplitMix64Stream, stream_sha256
        self.stream = SplitMix64Stream
        # SplitMix64Stream is the fast form of stream_sha256 (the plain reference): check it here.
        probe = self._digest(self._splitmix(100_003, 42))[0]
        if probe != stream_sha256(100_003, 42):
            sys.exit("Tests/tools/splitmix.py: SplitMix64Stream disagrees with stream_sha256")

    def _splitmix(self, length, seed):
        stream = self.stream(seed)
        while length > 0:
            block = stream.read(min(length, BLOCK))
            length -= len(block)
            yield block

    @staticmethod
    def _file(path):
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                yield block

    @staticmethod
    def _digest(blocks):
        digest, crcs, total = hashlib.sha256(), [], 0
        for block in blocks:
            digest.update(block)
            crcs.append(zlib.crc32(block))
            total += len(block)
        return digest.hexdigest(), crcs, total

    def splitmix(self, length, seed):
        if ("splitmix", length, seed) not in self.known:
            self.known["splitmix", length, seed] = self._digest(self._splitmix(length, seed))
        return self.known["splitmix", length, seed]

    def file(self, path):
        if ("file", path) not in self.known:
            self.known["file", path] = self._digest(self._file(path))
        return self.known["file", path]


def one_case(pair, status, depth, variant, options, references, bench):
    """One fault with one open response `depth` body bytes in; returns the case's numbers."""
    if variant == "nginx":
        port, path, expect = NGINX_PORT, NGINX_PATH, os.path.getsize(NGINX_FILE)
    else:
        expect = depth + options.tail
        port = DEMO_PORT
        path = f"/{'bytes' if variant == 'range' else 'chunked'}/{expect}?seed={options.seed}"
    case = {"depth": depth, "variant": variant, "request": f"GET {path} (:{port})", "expect": expect,
            "unplanned": None}
    previous = (status.get("lastRecovery") or {}).get("failedDomain")
    recoveries = status["recoveries"]

    class Client(bench.Client):
        def __init__(self):
            command = ["ip", "netns", "exec", status["namespace"], sys.executable, SCRIPT, "client",
                       "--address", status["serviceAddress"], "--port", str(port), "--path", path,
                       "--depth", str(depth), "--expect", str(expect), "--rcvbuf", str(options.rcvbuf)]
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    c = Client()
    try:
        # Unpaced; the demo service makes some 100-300 MB/s under TCG. Generous.
        ready = c.receive(180 + depth / 5e6, "ready line")
        if not ready["ready"]:
            sys.exit(f"{variant} at {size_label(depth)}: could not open the response: {ready['error']}")
        case["head"] = ready["head"]
        case["prefixSeconds"] = ready["seconds"]
        # A failover nobody injected while the client read the prefix (a false detection under
        # load) has replayed this connection already: the caller retries the case.
        now = pair.status()
        if now["recoveries"] != recoveries:
            record = now.get("lastRecovery") or {}
            case["unplanned"] = (f"an unplanned failover while the client read the first {size_label(depth)}: "
                                 f"{record.get('cause')} ({record.get('failedDomain')} → {record.get('newPrimary')})")
            return case
        log_offset = pair.log_size()
        before = time.monotonic()
        message = pair.ftvm("inject", "kernel-panic")
        after = time.monotonic()
        # The client's window stays shut until the relay has stopped listening to the old primary.
        pair.wait_detection(log_offset, recoveries)
        c.send("go")
        injected = bench.injection_instant(message, before, after)
        result = c.receive(240, "result line")["result"]
        # The connection stays open until the record is final: a close could count as one
        # during the replay.
        current = pair.wait(lambda s: (s.get("lastRecovery") or {}).get("failedDomain") not in (None, previous),
                            120, "the recovery record")
    finally:
        c.kill()

    record = current["lastRecovery"]
    replay = record.get("replay") or {}
    phases = {p["name"]: p["sinceDetectionMillis"] for p in record.get("phases", [])}
    timings = replay.get("connectionTimings", [])
    mine = [t for t in timings if f":{ready['port']}→" in t.get("connection", "")]
    timing = mine[0] if mine else (timings[0] if len(timings) == 1 else None)
    detect = record.get("detectMillis")
    detected = injected + detect / 1000 if detect is not None else injected
    case.update({
        "detect": detect, "cause": record.get("cause"), "error": record.get("error"),
        "spliced": phases.get("replay", replay.get("lastSplicedMillis")),
        "splicedSinceReplay": timing["splicedMillis"] if timing else None,
        "firstByte": phases.get("first-byte", replay.get("firstByteMillis")),
        "regenerated": timing["regeneratedBytes"] if timing else None,
        "resumedAt": timing.get("resumedAt") if timing else None,
        "replayedConnections": replay.get("connections"), "splicedCount": replay.get("spliced", 0),
        "resetCount": replay.get("reset", 0), "rangeResumed": replay.get("rangeResumed"),
        "resets": replay.get("resets", []), "pending": replay.get("pending", 0),
        "bodyBytes": result["bodyBytes"], "buffered": result["buffered"],
        "goAfterDetection": (result["go"] - detected) * 1000,
        "clientFirst": (result["firstNew"] - injected) * 1000 if result["firstNew"] is not None else None,
        "clientError": result["error"],
        "clientErrorAt": (result["errorAt"] - injected) * 1000 if result["errorAt"] is not None else None,
        "phases": phases,
        "tailSeconds": (result["last"] - result["go"]) if result["last"] is not None else None,
    })
    if case["splicedCount"] and case["resetCount"] == 0:
        case["outcome"] = "spliced"
    elif case["resetCount"]:
        case["outcome"] = "reset"
    elif case["pending"]:
        # The takeover files its record once the replay settles or after some 30 s; a catch-up
        # still making progress then (the deadline bounds progress, not size) splices later,
        # unrecorded: the client's numbers are then the only ones.
        case["outcome"] = "pending when the record was filed"
    else:
        case["outcome"] = "none"

    # Reference, while the fresh backup boots (nothing is being measured then).
    t = time.monotonic()
    want_sha, want_blocks, _ = (references.file(NGINX_FILE) if variant == "nginx"
                                else references.splitmix(expect, options.seed))
    case["referenceSeconds"] = time.monotonic() - t
    case["verified"] = (not result["error"] and result["bodyBytes"] == expect and result["sha256"] == want_sha)
    case["mismatch"] = None
    if not result["error"] and result["bodyBytes"] == expect and result["sha256"] != want_sha:
        bad = [i for i, (a, b) in enumerate(zip(result["blocks"], want_blocks)) if a != b]
        case["mismatch"] = (f"SHA-256 differs; {len(bad)} of {len(want_blocks)} MiB blocks differ, the first at "
                            f"body bytes [{bad[0] * BLOCK}, {min((bad[0] + 1) * BLOCK, expect)})" if bad
                            else "SHA-256 differs but every block CRC32 matches")
    elif result["error"]:
        # A reset leaves a prefix: check that what did arrive was right.
        whole = result["bodyBytes"] // BLOCK
        bad = [i for i, (a, b) in enumerate(zip(result["blocks"][:whole], want_blocks)) if a != b]
        if bad:
            case["mismatch"] = (f"the {result['bodyBytes']} bytes received before the error include wrong bytes: "
                                f"first bad MiB block at body byte {bad[0] * BLOCK}")
    return case


def ms(value):
    return "n/a" if value is None else f"{value:.1f}"


def seconds(value):
    return "n/a" if value is None else f"{value:.1f}"


def number(value):
    return "—" if value is None else str(value)


TABLE_HEAD = ("| depth | variant | detect | detect → spliced | replay → spliced | detect → first new byte "
              "| regenerated B | resumedAt | outcome | verified | client: injection → first new byte |\n"
              "|---:|---|---:|---:|---:|---:|---:|---:|---|---|---:|")


def table_row(c):
    outcome = c["outcome"]
    if outcome == "spliced":
        outcome = "spliced (range)" if c["resumedAt"] is not None else "spliced (regenerated)"
    if c["resets"]:
        outcome += ": " + "; ".join(r.replace("|", "/") for r in c["resets"])
    verified = "yes" if c["verified"] else "NO" + (f" ({c['clientError']})" if c["clientError"] else "")
    if c["mismatch"]:
        verified += f" — {c['mismatch']}"
    return (f"| {size_label(c['depth'])} | {c['variant']} | {ms(c['detect'])} | {ms(c['spliced'])} "
            f"| {ms(c['splicedSinceReplay'])} | {ms(c['firstByte'])} | {number(c['regenerated'])} "
            f"| {number(c['resumedAt'])} | {outcome} | {verified} | {ms(c['clientFirst'])} |")


def headline(cases):
    ranged = {c["depth"]: c for c in cases if c["variant"] == "range"}
    if len(ranged) < 2:
        return None, "fewer than two depths of the range variant: no ratio"
    low, high = ranged[min(ranged)], ranged[max(ranged)]
    if not low["firstByte"] or high["firstByte"] is None:
        missing = [c for c in (low, high) if c["firstByte"] is None]
        why = "; ".join(f"range at {size_label(c['depth'])} has no first new byte ({c['outcome']}"
                        + (f": {'; '.join(c['resets'])}" if c["resets"] else "") + ")" for c in missing)
        return None, (f"range at {size_label(high['depth'])} ÷ range at {size_label(low['depth'])}: no ratio, "
                      f"the goal of {GOAL}× is not met: {why}")
    ratio = high["firstByte"] / low["firstByte"]
    verdict = "within" if ratio <= GOAL else "NOT within"
    return ratio, (f"range at {size_label(high['depth'])} ÷ range at {size_label(low['depth'])}, detect → first "
                   f"new byte: {ms(high['firstByte'])} ms ÷ {ms(low['firstByte'])} ms = **{ratio:.2f}×** "
                   f"({verdict} the issue's goal of {GOAL}×)")


def build_line(ftvm):
    """Which ftvm ran: the tree's commit (and whether Sources/ differed from it) and the binary's
    time and hash, since the binary can be rebuilt between two runs of this script."""
    def git(*args):
        try:
            return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " with local changes under Sources/" if git("status", "--porcelain", "--", "Sources") else ""
    try:
        built = datetime.datetime.fromtimestamp(os.path.getmtime(ftvm), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        with open(ftvm, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()[:12]
    except OSError:
        built, digest = "unknown", "unknown"
    return f"tree at `{commit}`{dirty}; `.build/release/ftvm` built {built}, sha256 {digest}…"


def write_doc(command, started, status, options, cases, machine_line, planned, unplanned):
    _, head_line = headline(cases)
    incomplete = ([f"**Incomplete run:** {len(cases)} of {planned} cases finished (see the command's output).", ""]
                  if len(cases) < planned else [])
    lines = [
        "# Range-resume benchmark: recovery cost against depth into an open response",
        "",
        "Generated by `scripts/bench_range_resume.py`; do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {started}",
        f"- machine: {machine_line}",
        f"- build: {options.build}",
        "",
        f"**Headline:** {head_line}.",
        "",
        *incomplete,
        f"Each case opens one connection from the client namespace to {status['serviceAddress']} (client "
        f"SO_RCVBUF {options.rcvbuf} B, set before connect), reads the response until D body bytes are in "
        "and stops reading, injects `ftvm inject kernel-panic`, waits until the daemon has declared the "
        "primary failed, then reads the rest to the end on the same connection and compares the whole "
        "body's SHA-256 with an independent reference. Variants:",
        "",
        f"- *range*: `GET /bytes/(D+{size_label(options.tail)})?seed={options.seed}` (demo service, strong "
        "`ETag`, `Accept-Ranges: bytes`): the replay asks for `Range: bytes=N-` with `If-Range` and "
        "splices the `206` at N. Reference: splitmix64 (`Tests/tools/splitmix.py`);",
        f"- *regenerate*: `GET /chunked/(D+{size_label(options.tail)})?seed={options.seed}`: the same "
        "payload bytes, chunked, no `ETag`: the replay regenerates every byte the client has and checks "
        "its CRC32C. The client decodes the chunked framing itself. Reference: splitmix64;",
        f"- *nginx*: `GET {NGINX_PATH}` on port {NGINX_PORT} (depths below 32 MiB only). Reference: "
        f"`{NGINX_FILE}`.",
        "",
        "Milliseconds. *detect*: injection → declared failure (`detectMillis`). *detect → spliced*: the "
        "`replay` phase (one connection: its splice). *replay → spliced*: the connection's `splicedMillis` "
        "(from the replay's start). *detect → first new byte*: the `first-byte` phase. *regenerated B*: "
        "server bytes the new guest regenerated and checked (for a range resume, the `206` head). "
        "*resumedAt*: the body byte the `206` began at (— when regenerated). *client*: injection → the "
        "first byte the client received that was not already in its socket at the fault, on its own clock.",
        "",
        TABLE_HEAD,
        *[table_row(c) for c in cases],
        "",
        "## Every case",
        "",
        "*client had*: body bytes read before the fault plus the bytes queued in its socket when it read "
        "on (framing included for chunked). *prefix s*: time to read the first D bytes from the primary. "
        "*tail s*: time to read the rest after the failover. *reads from*: when the client started reading "
        "the rest, from the detection. Phases (fence … first packet) are from the detection, as the daemon "
        "reports them. *client: injection → reset*: when the client's read failed (a reset), if it did.",
        "",
        "| depth | variant | request | cause | fence | switch | resume | first packet | client had | prefix s "
        "| reads from | tail s | client: injection → reset | replayed / spliced / reset / range-resumed "
        "| response validators |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cases:
        head = c.get("head", {})
        validators = ", ".join(f"{k}: {head[k]}" for k in ("etag", "accept-ranges", "transfer-encoding",
                                                             "last-modified") if k in head) or "—"
        lines.append(
            f"| {size_label(c['depth'])} | {c['variant']} | `{c['request']}` | {c['cause']} "
            + "".join(f"| {ms(c['phases'].get(p))} " for p in ("fence", "switch", "resume", "first-packet"))
            + f"| {c['depth']} + {c['buffered']} "
            f"| {c['prefixSeconds']:.1f} | {c['goAfterDetection']:+.1f} ms "
            f"| {seconds(c['tailSeconds'])} | {ms(c['clientErrorAt'])} "
            f"| {number(c['replayedConnections'])} / {c['splicedCount']} / {c['resetCount']} / "
            f"{number(c['rangeResumed'])} | {validators.replace('|', '/')} |")
    lines.append("")
    if unplanned:
        lines += ["## Unplanned failovers (cases retried)", ""]
        lines += [f"- {size_label(c['depth'])} {c['variant']}: {c['unplanned']}; the case was run again" for c in unplanned]
        lines.append("")
    notes = [c for c in cases if c["resets"] or c["clientError"] or c["mismatch"] or c["error"] or c["pending"]
             or (c["variant"] in ("range", "nginx") and c["resumedAt"] is None)
             or (c["variant"] == "regenerate" and c["resumedAt"] is not None)]
    if notes:
        lines += ["## Resets, failures and unexpected paths", ""]
        for c in notes:
            what = []
            if c["error"]:
                what.append(f"recovery error: {c['error']}")
            what += [f"reset: {r}" for r in c["resets"]]
            if c["clientError"]:
                what.append(f"client: {c['clientError']}")
            if c["mismatch"]:
                what.append(f"WRONG BYTES: {c['mismatch']}")
            if c["pending"]:
                what.append(f"{c['pending']} connection(s) still catching up when the recovery record was filed: no "
                            f"splice or first-byte time in `ftvm status`; the client's first new byte came "
                            f"{ms(c['clientFirst'])} ms after the injection")
            if c["variant"] in ("range", "nginx") and c["resumedAt"] is None and c["outcome"] == "spliced":
                what.append("spliced without a range resume (regenerated)")
            if c["variant"] == "regenerate" and c["resumedAt"] is not None:
                what.append("resumed with a range although the response was chunked")
            lines.append(f"- {size_label(c['depth'])} {c['variant']}: " + ("; ".join(what) or "no splice reported"))
        lines.append("")
    with open(options.doc, "w") as doc:
        doc.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", default="1M,100M,2G",
                        help="body bytes read before the fault, comma-separated (K/M/G suffixes)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="of " + ", ".join(VARIANTS))
    parser.add_argument("--tail", type=parse_size, default=parse_size("64M"),
                        help="body bytes after the depth for /bytes and /chunked")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--rcvbuf", type=int, default=65536, help="client SO_RCVBUF in bytes")
    parser.add_argument("--name", default="rrb", help="the pair's name (brought up and removed here)")
    parser.add_argument("--settle", type=float, default=5,
                        help="seconds to wait after the pair is protected again before the next case (libvirt "
                             "is still retiring the old primary just then: a fault in that second fenced or "
                             "resumed a second late)")
    parser.add_argument("--doc", default=DOC, help="the report to write")
    options = parser.parse_args()
    depths = [parse_size(d) for d in options.depths.split(",") if d.strip()]
    variants = [v for v in options.variants.split(",") if v]
    if unknown := [v for v in variants if v not in VARIANTS]:
        sys.exit(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    if options.tail <= 0 or any(d <= 0 for d in depths):
        sys.exit("depths and --tail must be positive")
    nginx_size = os.path.getsize(NGINX_FILE) if "nginx" in variants else 0
    plan = [(d, v) for d in depths for v in variants if v != "nginx" or d < min(32 << 20, nginx_size)]

    sys.path.insert(0, os.path.dirname(SCRIPT))
    import bench_replay as bench  # Pair, Client, injection_instant, machine
    import benchpair  # FTVM: the binary the daemon runs

    references = References()
    options.build = build_line(benchpair.FTVM)  # before the pair is up: the daemon runs this binary
    command = shlex.join([os.path.relpath(SCRIPT, os.getcwd()), *sys.argv[1:]])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    pair = bench.Pair(options.name)
    pair.down()
    cases, unplanned = [], []
    try:
        pair.up()
        status = pair.status()
        machine_line = bench.machine(status)
        print(f"pair {options.name} up; {machine_line}", flush=True)
        for depth, variant in plan:
            for attempt in (1, 2):
                pair.wait(lambda s: s["protected"] and (s.get("lastRecovery") or {}).get("reprotected", True),
                          300, "protection")
                time.sleep(options.settle)
                status = pair.wait(lambda s: s["protected"], 300, "protection")
                case = one_case(pair, status, depth, variant, options, references, bench)
                if not case["unplanned"]:
                    break
                unplanned.append(case)
                print(f"{size_label(depth)} {variant}: {case['unplanned']}; " +
                      ("running the case again" if attempt == 1 else "giving up on it"), flush=True)
            if case["unplanned"]:
                continue
            cases.append(case)
            print(f"{size_label(depth)} {variant}: detect {ms(case['detect'])} ms, spliced {ms(case['spliced'])} ms, "
                  f"first byte {ms(case['firstByte'])} ms, regenerated {number(case['regenerated'])} B, "
                  f"resumedAt {number(case['resumedAt'])}, {case['outcome']}, verified {case['verified']}, "
                  f"client first byte {ms(case['clientFirst'])} ms (prefix {case['prefixSeconds']:.1f} s)"
                  + (f"; resets: {case['resets']}" if case["resets"] else "")
                  + (f"; client: {case['clientError']}" if case["clientError"] else "")
                  + (f"; WRONG BYTES: {case['mismatch']}" if case["mismatch"] else ""), flush=True)
        pair.wait(lambda s: s["protected"] and (s.get("lastRecovery") or {}).get("reprotected", True),
                  300, "protection")
    finally:
        pair.down()
        if cases:
            print("\nmilliseconds")
            print(TABLE_HEAD.split("\n")[0])
            for c in cases:
                print(table_row(c))
            print("\n" + headline(cases)[1].replace("**", ""))
            write_doc(command, started, status, options, cases, machine_line, len(plan), unplanned)
            print(f"\nwrote {os.path.relpath(options.doc, REPO)}" + ("" if len(cases) == len(plan) else
                                                              f" ({len(cases)} of {len(plan)} cases: incomplete)"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2:])
    else:
        main()
