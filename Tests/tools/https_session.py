#!/usr/bin/env python3
"""Keep-alive HTTPS sessions through ftvm's TLS terminator, one TLS connection each, that must
outlive whatever the test does to the pair meanwhile (a fault, an upgrade).

Two sessions run side by side until STOP_FILE exists: one to the demo service (/bytes/N?seed=S,
each body checked against the independent splitmix64 reference) and one to the image's nginx
(/whoami, which must name this client's own address: the guest learns who the client is). Each
request checks that the session is still on its first socket (http.client would reconnect
silently). Prints one JSON report.
"""
import argparse
import hashlib
import http.client
import json
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splitmix import stream_sha256  # noqa: E402


def own_address(host: str, port: int) -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((host, port))
    address = probe.getsockname()[0]
    probe.close()
    return address


class Session:
    def __init__(self, name, host, port, context):
        self.name = name
        self.connection = http.client.HTTPSConnection(host, port, context=context, timeout=60)
        self.connection.connect()
        self.socket = self.connection.sock
        self.requests = 0
        self.failures = []

    def get(self, path):
        """The body of GET path, or None after a failure (recorded)."""
        try:
            self.connection.request("GET", path)
            response = self.connection.getresponse()
            body = response.read()
        except Exception as error:  # noqa: BLE001 - every failure is a finding to report
            self.failures.append(f"{self.name} {path}: {type(error).__name__}: {error}")
            return None
        # One TCP connection carries one TLS connection (TLS 1.3 has no renegotiation, and
        # HAProxy never renegotiates): the same socket is the same TLS session.
        if self.connection.sock is not self.socket:
            self.failures.append(f"{self.name} {path}: the session moved to a new TCP connection")
        if response.status != 200:
            self.failures.append(f"{self.name} {path}: status {response.status}")
            return None
        self.requests += 1
        return body


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--demo-port", type=int, required=True)
    parser.add_argument("--nginx-port", type=int, required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=300)
    arguments = parser.parse_args()

    context = ssl.create_default_context(cafile=arguments.cafile)
    context.set_alpn_protocols(["http/1.1"])
    demo = Session("demo", arguments.host, arguments.demo_port, context)
    nginx = Session("nginx", arguments.host, arguments.nginx_port, context)
    me = own_address(arguments.host, arguments.demo_port)
    versions = []
    started = time.monotonic()
    seed = 1
    while not os.path.exists(arguments.stop_file) and time.monotonic() - started < arguments.max_seconds:
        size = 1000 + (seed * 7919) % 200000
        body = demo.get(f"/bytes/{size}?seed={seed}")
        if body is not None and hashlib.sha256(body).hexdigest() != stream_sha256(size, seed):
            demo.failures.append(f"demo /bytes/{size}?seed={seed}: wrong bytes")
        seed += 1
        whoami = nginx.get("/whoami")
        if whoami is not None and whoami.decode().strip() != me:
            nginx.failures.append(f"nginx /whoami: the guest saw {whoami!r}, not this client's {me}")
        version = demo.get("/version")
        if version is not None and (not versions or versions[-1] != version.decode().strip()):
            versions.append(version.decode().strip())
        time.sleep(0.05)
    failures = demo.failures + nginx.failures
    print(json.dumps({
        "ok": not failures and demo.requests > 0 and nginx.requests > 0,
        "requests": demo.requests + nginx.requests,
        "client": me,
        "versions": versions,
        "alpn": demo.socket.selected_alpn_protocol(),
        "tls": demo.socket.version(),
        "failures": failures[:20],
    }))


if __name__ == "__main__":
    main()
