#!/usr/bin/env python3
"""Independent reference for the demo service's /bytes/N?seed=S stream: prints its SHA-256
(or, with --write, the bytes themselves, for the image builds).

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


class SplitMix64Stream:
    """The same stream as `stream_sha256`, handed out incrementally: `read(n)` returns the next
    n bytes. Memory stays bounded (one 64 KiB block) however long the stream is.

    `stream_sha256` above stays the slow, obviously right reference; this class computes one
    block of words at a time with big-integer arithmetic (about 4x faster in CPython) and is
    checked against it.

    The trick ("SIMD within a register"): the block's `WORDS` states are packed into one big
    integer, one per 128-bit lane with the value in the lane's low 64 bits. A lane's value times
    a 64-bit constant is below 2**128, so the multiplications never carry into the next lane;
    `LANES` (64 one-bits per lane) then takes each product mod 2**64 and, after a right shift,
    drops the bits that the shift moved down from the lane above.
    """

    WORDS = 8192  # 8-byte words per block: 64 KiB of output
    _GAMMA = 0x9E3779B97F4A7C15
    _LANES = int.from_bytes((b"\xff" * 8 + bytes(8)) * WORDS, "little")
    _ONES = int.from_bytes((b"\x01" + bytes(15)) * WORDS, "little")
    # Lane k holds (k + 1) * GAMMA, at most 2**77: it fits its lane without reduction.
    _STEPS = _GAMMA * int.from_bytes(b"".join((k + 1).to_bytes(16, "little") for k in range(WORDS)), "little")

    def __init__(self, seed: int) -> None:
        self._state = seed & MASK
        self._block = b""
        self._offset = 0  # bytes of _block already handed out
        self.position = 0  # bytes of the stream handed out so far

    def _next_block(self) -> bytes:
        lanes = self._LANES
        # state + (k + 1) * GAMMA in lane k, i.e. the states the scalar loop goes through.
        z = (self._state * self._ONES + self._STEPS) & lanes
        self._state = (self._state + self.WORDS * self._GAMMA) & MASK
        z = ((z ^ (z >> 30)) & lanes) * 0xBF58476D1CE4E5B9 & lanes
        z = ((z ^ (z >> 27)) & lanes) * 0x94D049BB133111EB & lanes
        z = (z ^ (z >> 31)) & lanes
        # Each lane is its word in little-endian order followed by 8 zero bytes: keep every
        # other 8-byte group. (The 'Q' view only groups bytes; no value is reinterpreted.)
        return memoryview(z.to_bytes(16 * self.WORDS, "little")).cast("Q")[::2].tobytes()

    def read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            if self._offset == len(self._block):
                self._block, self._offset = self._next_block(), 0
            take = min(n, len(self._block) - self._offset)
            parts.append(self._block[self._offset:self._offset + take])
            self._offset += take
            self.position += take
            n -= take
        return b"".join(parts)


def write_stream(n: int, seed: int, out) -> None:
    """Writes the first n bytes of the stream to the binary file `out` (image builds)."""
    stream = SplitMix64Stream(seed)
    while n > 0:
        block = stream.read(min(n, 1 << 20))
        out.write(block)
        n -= len(block)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--write":
        write_stream(int(sys.argv[2]), int(sys.argv[3]), sys.stdout.buffer)
    elif len(sys.argv) == 3:
        print(stream_sha256(int(sys.argv[1]), int(sys.argv[2])))
    else:
        sys.exit("usage: splitmix.py N SEED (prints the SHA-256 of the first N bytes)\n"
                 "       splitmix.py --write N SEED (writes those N bytes to stdout)")
