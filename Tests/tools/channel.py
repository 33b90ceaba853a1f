#!/usr/bin/env python3
"""Host-side access to one guest's ftvm channel file (/dev/shm/NAME), for scripts that boot a
guest without the ftvm daemon (images/test-disk.sh). Offsets and codes are those of
Sources/FTVMChannel/ChannelLayout.swift, written out here independently:

  channel.py format PATH              create PATH (1 MiB) with a valid header, everything else 0
  channel.py read PATH                one JSON line: heartbeat, agent state, services, reply
  channel.py post PATH COMMAND [ARG]  post a command (with the host clock), wait up to 10 s for
                                      the agent's reply, print "STATUS TEXT"; exit 1 on no reply
  channel.py send PATH COMMAND [ARG]  post a command and return at once (for faults after which
                                      the agent cannot answer: kernel-panic, kernel-hang)
  channel.py wait PATH STATE SECONDS  wait until the agent state is STATE (e.g. ready); print
                                      the wall-clock time (s since the epoch) it was first seen
"""
import json
import mmap
import os
import struct
import sys
import time

MAGIC = 0x4E41_4843_4D56_5446  # "FTVMCHAN" read as a little-endian integer
VERSION = 2
SIZE = 1 << 20
AGENT_STATES = {0: "absent", 1: "starting", 2: "ready", 3: "failed"}
SERVICE_STATES = {0: "unused", 1: "starting", 2: "running", 3: "exited", 4: "hung"}
COMMANDS = {"ping": 1, "kernel-panic": 2, "kernel-hang": 3, "service-crash": 4, "service-hang": 5,
            "agent-exit": 6, "resync": 7, "network-down": 8}


def text(region, offset, length):
    return region[offset:offset + length].split(b"\0", 1)[0].decode(errors="replace")


def open_region(path):
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, SIZE)
    finally:
        os.close(fd)


def format_region(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o660)
    try:
        os.ftruncate(fd, SIZE)
        os.pwrite(fd, struct.pack("<QII", MAGIC, VERSION, SIZE), 0)
    finally:
        os.close(fd)


def read(region):
    heartbeat, state, tick, clock, pid = struct.unpack_from("<QIIQI", region, 16)
    services = []
    for slot in range(4):
        base = 64 + 32 * slot
        s_state, s_pid, restarts, last_exit, port = struct.unpack_from("<IIIiI", region, base)
        if s_state:
            services.append({"name": text(region, base + 20, 12), "port": port,
                             "state": SERVICE_STATES.get(s_state, s_state), "pid": s_pid,
                             "restarts": restarts, "last_exit": last_exit})
    reply_seq, reply_status = struct.unpack_from("<Qi", region, 256)
    return {"heartbeat": heartbeat, "agent": AGENT_STATES.get(state, state), "tick_ms": tick,
            "guest_clock_ns": clock, "agent_pid": pid, "version": text(region, 336, 32),
            "services": services, "reply": {"seq": reply_seq, "status": reply_status,
                                            "text": text(region, 272, 48)}}


def send(region, command, argument):
    struct.pack_into("<Q", region, 320, time.time_ns())  # the host clock, for resync
    seq = struct.unpack_from("<Q", region, 192)[0] + 1
    struct.pack_into("<II", region, 200, COMMANDS[command], argument)
    region[208:256] = bytes(48)
    struct.pack_into("<Q", region, 192, seq)  # the sequence last: it publishes the command
    return seq


def post(region, command, argument):
    seq = send(region, command, argument)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply_seq, status = struct.unpack_from("<Qi", region, 256)
        if reply_seq == seq:
            return status, text(region, 272, 48)
        time.sleep(0.02)
    return None


def main(argv):
    if len(argv) >= 3 and argv[1] == "format":
        format_region(argv[2])
    elif len(argv) == 3 and argv[1] == "read":
        print(json.dumps(read(open_region(argv[2]))))
    elif len(argv) in (4, 5) and argv[1] == "post" and argv[3] in COMMANDS:
        reply = post(open_region(argv[2]), argv[3], int(argv[4]) if len(argv) == 5 else 0)
        if reply is None:
            sys.exit(f"channel.py: no reply to {argv[3]} within 10 s")
        print(*reply)
    elif len(argv) in (4, 5) and argv[1] == "send" and argv[3] in COMMANDS:
        send(open_region(argv[2]), argv[3], int(argv[4]) if len(argv) == 5 else 0)
    elif len(argv) == 5 and argv[1] == "wait" and argv[3] in AGENT_STATES.values():
        region = open_region(argv[2])
        deadline = time.monotonic() + float(argv[4])
        while AGENT_STATES.get(struct.unpack_from("<I", region, 24)[0]) != argv[3]:
            if time.monotonic() > deadline:
                sys.exit(f"channel.py: agent not {argv[3]} within {argv[4]} s: {json.dumps(read(region))}")
            time.sleep(0.01)
        print(f"{time.time():.3f}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
