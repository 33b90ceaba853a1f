#!/usr/bin/env python3
"""An end server for relay-server tests: it runs in the clients' namespace, the guest's proxy
fetches from it, and it counts what it sees so a test can check that a failover made it see
each request once.

    backend.py --listen 10.77.0.1:9000 --stats /tmp/backend.json

Serves HTTP/1.1 with keep-alive and deterministic heads (no Date, no Server: a replayed proxy
must regenerate the same bytes):
    GET  /bytes/N?seed=S   the splitmix64 stream (Tests/tools/splitmix.py), Content-Length N
    POST /sha256           the SHA-256 of the body, as hex and a newline
    anything else          404
`delay=SECONDS` in the query holds the answer back that long after the request is in (so a test
can fail the guest while the end server has a request and has not answered it yet).

After every connection, request and close it rewrites the stats file (with --count-only, twice
a second, "requests" a count and "repeated" how many of them asked for a target already asked
for) (atomically, by rename):
    {"connections": C, "closed": K, "requests": [{"method", "path", "connection", "bytes"}...]}
"bytes" is the body length received (POST) or sent (GET) in full; a request whose response
could not be sent in full has "complete": false.
"""
import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splitmix import SplitMix64Stream  # noqa: E402

LOCK = threading.Lock()
STATS = {"connections": 0, "closed": 0, "requests": []}


COUNT_ONLY = False
TARGETS = set()


def publish(path):
    """Writes the stats file (one writer at a time: the temporary file is shared). With
    --count-only the request list is a count and the file is written by `publisher` only."""
    if COUNT_ONLY:
        return
    write(path)


def write(path):
    with LOCK:
        text = json.dumps(STATS)
        temporary = path + ".tmp"
        with open(temporary, "w") as out:
            out.write(text)
        os.replace(temporary, path)


def publisher(path):
    while True:
        write(path)
        time.sleep(0.5)


SMALL = 16384
MASK = (1 << 64) - 1


def small_stream(count, seed):
    """The first `count` bytes of the splitmix64 stream, word by word: for short answers the
    block generator of splitmix.py costs a 64 KiB block each (load tests ask for 1 KiB)."""
    out = bytearray()
    state = seed & MASK
    while len(out) < count:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out[:count])


def read_head(conn, buffer):
    """Returns (head bytes, rest) or (None, buffer) at EOF before a whole head."""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None, buffer
        buffer += data
        if len(buffer) > 65536:
            raise ValueError("request head too large")
    head, rest = buffer.split(b"\r\n\r\n", 1)
    return head, rest


def respond(conn, status, body=b"", length=None, content_type="application/octet-stream"):
    size = len(body) if length is None else length
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\n\r\n"
    conn.sendall(head.encode() + body)


def serve(conn, number, stats_path):
    buffer = b""
    try:
        while True:
            head, buffer = read_head(conn, buffer)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            length = int(fields.get("content-length", "0"))
            entry = {"method": method, "path": target, "connection": number, "bytes": 0, "complete": False}
            with LOCK:
                if COUNT_ONLY:
                    STATS["requests"] = STATS.get("requests", 0) + 1
                    if target in TARGETS:
                        STATS["repeated"] += 1
                    TARGETS.add(target)
                else:
                    STATS["requests"].append(entry)
            publish(stats_path)
            path, _, query = target.partition("?")
            params = dict(part.partition("=")[::2] for part in query.split("&") if part)
            if method == "POST" and path == "/sha256":
                digest = hashlib.sha256()
                received = 0
                while received < length:
                    if not buffer:
                        buffer = conn.recv(65536)
                        if not buffer:
                            return
                    take = buffer[: length - received]
                    digest.update(take)
                    received += len(take)
                    buffer = buffer[len(take):]
                entry["bytes"] = received
                publish(stats_path)
                time.sleep(float(params.get("delay", "0")))
                respond(conn, "200 OK", (digest.hexdigest() + "\n").encode(), content_type="text/plain")
            elif method == "GET" and path.startswith("/bytes/"):
                count = int(path[len("/bytes/"):])
                seed = int(params.get("seed", "0"))
                time.sleep(float(params.get("delay", "0")))
                if count <= SMALL:
                    respond(conn, "200 OK", small_stream(count, seed))
                    sent = count
                else:
                    stream = SplitMix64Stream(seed)
                    respond(conn, "200 OK", length=count)
                    sent = 0
                    while sent < count:
                        block = stream.read(min(65536, count - sent))
                        conn.sendall(block)
                        sent += len(block)
                entry["bytes"] = sent
            else:
                respond(conn, "404 Not Found", b"not found\n", content_type="text/plain")
            entry["complete"] = True
            publish(stats_path)
            if fields.get("connection", "").lower() == "close":
                return
    except (OSError, ValueError) as error:
        print(f"backend: connection {number}: {error}", file=sys.stderr)
    finally:
        conn.close()
        with LOCK:
            STATS["closed"] += 1
        publish(stats_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="10.77.0.1:9000")
    parser.add_argument("--stats", required=True)
    parser.add_argument(
        "--count-only", action="store_true",
        help="count requests instead of listing them, and write the file twice a second (for load tests)")
    args = parser.parse_args()
    global COUNT_ONLY
    COUNT_ONLY = args.count_only
    if COUNT_ONLY:
        STATS["requests"] = 0
        STATS["repeated"] = 0
    host, _, port = args.listen.rpartition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(128)
    write(args.stats)
    if COUNT_ONLY:
        threading.Thread(target=publisher, args=(args.stats,), daemon=True).start()
    print(f"backend listening on {args.listen}", flush=True)
    while True:
        conn, _peer = listener.accept()
        with LOCK:
            STATS["connections"] += 1
            number = STATS["connections"]
        publish(args.stats)
        threading.Thread(target=serve, args=(conn, number, args.stats), daemon=True).start()


if __name__ == "__main__":
    main()
