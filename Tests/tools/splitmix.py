#!/usr/bin/env python3
"""Independent reference for the demo service's /bytes/N?seed=S stream: prints its SHA-256.

Written from the definition in the issue (splitmix64, 8 little-endian bytes per output,
truncated to N), sharing no code with the Swift implementation it checks.
"""
import hashlib
import struct
import sys

MASK = (1 << 64) - 1


def stream_sha256(n: int, seed: int) -> str:
    digest = hashlib.sha256()
    state = seed & MASK
    remaining = n
    chunk = bytearray()
    while remaining > 0:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        chunk += struct.pack("<Q", z)
        if len(chunk) >= 65536 or len(chunk) >= remaining:
            take = min(len(chunk), remaining)
            digest.update(chunk[:take])
            remaining -= take
            chunk = bytearray()
    return digest.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: splitmix.py N SEED")
    print(stream_sha256(int(sys.argv[1]), int(sys.argv[2])))
