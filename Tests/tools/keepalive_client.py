#!/usr/bin/env python3
"""A keep-alive HTTP client for the integration tests, independent of the Swift code.

Sends a fixed series of requests on ONE TCP connection, reads each response fully, then sends
the first part of one more request (its head is not finished, so the server cannot answer it),
and prints one JSON line: its local port, the bytes it sent, the bytes it received, and the
length and CRC32C of that unfinished request (what the relay's log must still hold once the
completed exchanges left it). It keeps the connection open until a line arrives on stdin (so the
test can inspect the log while the connection is live), then closes it.

usage: keepalive_client.py HOST [PORT]
"""
import json
import socket
import sys


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bitwise: slow and obviously right, for small inputs."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("connection closed before a response head")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("connection closed inside a body")
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def main() -> None:
    host = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    body = bytes((i * 7 + 3) % 251 for i in range(5000))
    requests = [
        f"GET /bytes/100000?seed=11 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
        f"POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body,
        f"GET /version HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
    ]
    sock = socket.create_connection((host, port), timeout=60)
    sent = b""
    received = 0
    leftover = b""
    for request in requests:
        sock.sendall(request)
        sent += request
        response, leftover = read_response(sock, leftover)
        received += len(response)
    unfinished = f"GET /bytes/10 HTTP/1.1\r\nHost: {host}\r\nX-Unfinished: yes\r\n".encode()
    sock.sendall(unfinished)
    sent += unfinished
    print(json.dumps({"port": sock.getsockname()[1], "sent": len(sent), "received": received,
                      "unfinished": len(unfinished), "unfinished_crc32c": crc32c(unfinished)}), flush=True)
    sys.stdin.readline()
    sock.close()


if __name__ == "__main__":
    main()
