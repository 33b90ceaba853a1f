#!/usr/bin/env python3
"""What the close fence costs a normal close.

The relay holds every FIN and RST a guest sends on a logged connection until the guest's agent
vouches for it: three beats and three ticks of wall time after it, every service running (so a
FIN from a crashing service never reaches a client; docs/replay.md, "The close fence"). This
measures that delay where a client can see it: busybox httpd answers with `Connection: close`,
so the client gets the whole body, then waits for the server's FIN (EOF). The gap between the
last body byte and EOF is the fence's cost; the same gap for a request the server answers on a
kept-alive connection and the client then closes shows the client-first close, which is not
delayed for the client at all.

usage: bench_close.py [--name PAIR] [--requests N]   (needs a pair that is up)
"""
import argparse
import socket
import statistics
import subprocess
import sys
import time

CLIENT = r'''
import socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    s = socket.create_connection((host, port), timeout=10)
    start = time.monotonic()
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    body_at = None
    length = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if length is None and b"\r\n\r\n" in data:
            head, _, _ = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
        if length is not None and body_at is None and len(data.partition(b"\r\n\r\n")[2]) >= length:
            body_at = time.monotonic()
    eof_at = time.monotonic()
    s.close()
    print(f"{(body_at - start) * 1000:.3f} {(eof_at - body_at) * 1000:.3f}", flush=True)
    time.sleep(0.02)
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="demo")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    out = subprocess.run(
        ["ip", "netns", "exec", f"ftvm-{args.name}", "python3", "-c", CLIENT, "10.77.0.2", "8080", str(args.requests)],
        capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"client failed: {out.stderr.strip()}")
    pairs = [tuple(map(float, line.split())) for line in out.stdout.split("\n") if line.strip()]
    body = sorted(p[0] for p in pairs)
    gap = sorted(p[1] for p in pairs)

    def pct(values, q):
        return values[min(len(values) - 1, int(q * len(values)))]

    print(f"{len(pairs)} requests to busybox httpd (Connection: close) through the relay")
    print("| measure | median ms | p90 ms | p99 ms |")
    print("|---|---|---|---|")
    print(f"| request → whole body | {statistics.median(body):.2f} | {pct(body, .9):.2f} | {pct(body, .99):.2f} |")
    print(f"| whole body → server FIN (the fence) | {statistics.median(gap):.2f} | {pct(gap, .9):.2f} | {pct(gap, .99):.2f} |")


if __name__ == "__main__":
    main()
