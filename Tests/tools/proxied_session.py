#!/usr/bin/env python3
"""A keep-alive client of a proxy, independent of the Swift code (issue 24's sessions).

On ONE TCP connection, sends `GET PREFIX/bytes/SIZE?seed=S` requests one after the other, S
counting up from --seed, and checks each answer: status 200 and a body byte-identical to the
splitmix64 stream (Tests/tools/splitmix.py). It stops at the first error (a non-200 status, a
wrong byte, a reset, a timeout) or once the --stop file exists, and prints one JSON object:
the requests answered, the seeds asked for, the statuses seen and the error, if any.

usage: proxied_session.py HOST PORT PREFIX --size N --seed S --stop FILE
"""
import argparse
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splitmix import SplitMix64Stream  # noqa: E402


def read_response(sock, buffer):
    """One response with a Content-Length body: (status, body, what follows it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a response head")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed inside a body ({len(rest)} of {length})")
        rest += chunk
    return status, rest[:length], rest[length:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("prefix")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--stop", required=True)
    args = parser.parse_args()
    result = {"answered": 0, "seeds": [], "statuses": {}, "error": None}
    try:
        sock = socket.create_connection((args.host, args.port), timeout=60)
        buffer = b""
        seed = args.seed
        while not os.path.exists(args.stop):
            request = f"GET {args.prefix}/bytes/{args.size}?seed={seed} HTTP/1.1\r\nHost: {args.host}\r\n\r\n"
            result["seeds"].append(seed)
            sock.sendall(request.encode())
            status, body, buffer = read_response(sock, buffer)
            result["statuses"][str(status)] = result["statuses"].get(str(status), 0) + 1
            if status != 200:
                result["error"] = f"status {status} for seed {seed}"
                break
            if body != SplitMix64Stream(seed).read(args.size):
                result["error"] = f"wrong bytes for seed {seed}"
                break
            result["answered"] += 1
            seed += 1
    except (OSError, ValueError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
