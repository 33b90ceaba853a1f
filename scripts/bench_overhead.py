#!/usr/bin/env python3
"""Overhead of the ftvm relay (with the FT-TCP connection log) against the direct path, per client MTU.

The same image and service are measured side by side in one run:
  relay:  a protected pair (`ftvm up`): client netns -> tap -> ftvm relay + log -> guest link -> QEMU
  direct: one more guest from the same image, started by plain QEMU on a tap that is moved into
          its own client netns: client netns -> tap -> QEMU. No relay, no log.
For each MTU in --mtus both paths are brought up at that MTU (the pair through its `network.mtu`
setting; the direct guest through the same `ftvm.mtu=` kernel argument and the same tap MTU), then
rounds alternate between the paths so drift on the busy 2-core machine hits both alike. Each round:
a bulk download and an upload, each checked byte for byte, and wrk on a small response (requests/s,
p50 and p99 latency, and wrk's errors: non-2xx answers, socket errors, timeouts).

The default output is a table per MTU and a summary. With --json, stdout carries one JSON object
per line, one per MTU, with the keys mtu, download_ratio, upload_ratio, rps_ratio, p50_ratio,
p99_ratio (relay / direct, medians over the rounds) and the absolute figures under "relay" and
"direct"; progress goes to stderr.

usage: scripts/bench_overhead.py [--rounds N] [--seconds S] [--mtus 1500,9000,65000] [--json]
                                 [--name PAIR] [--direct-name NAME] [--self-test]
"""
import argparse
import functools
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FTVM = os.path.join(REPO, ".build", "release", "ftvm")  # built by scripts/prepare.sh
IMAGE = "/var/lib/ftvm/images/default"
ADDRESS = "10.77.0.2"
GATEWAY = "10.77.0.1"
BULK = 64 << 20
UPLOAD = 32 << 20
NAME = re.compile(r"^[a-z0-9-]{1,10}$")  # a pair's name (ftvm up --help); it names netns and tap
RATIO_KEYS = ("download_ratio", "upload_ratio", "rps_ratio", "p50_ratio", "p99_ratio")
# Median figure -> its ratio key and its label in the table.
FIGURES = [("download_mbps", "download_ratio", "download MB/s"), ("upload_mbps", "upload_ratio", "upload MB/s"),
           ("rps", "rps_ratio", "requests/s"), ("p50_ms", "p50_ratio", "p50 latency ms"),
           ("p99_ms", "p99_ratio", "p99 latency ms")]
ERRORS = ("non_2xx", "connect", "read", "write", "timeout")
# What the relay's log did during an MTU's rounds (`ftvm status --json`'s "log"): a connection it could not hold
# is served unprotected, never refused, so these say whether the run measured protected traffic.
LOG_KEYS = ("connectionsLogged", "bytesLogged", "bytesTrimmed", "unprotectedOverBudget", "unprotectedLogFull",
            "admittedUnlogged")


PHASES = ("download", "upload", "wrk")


def cpu_seconds(pid, thread=None):
    """User + system CPU seconds of process `pid`, or of its threads named `thread` only."""
    tick = os.sysconf("SC_CLK_TCK")
    if thread is None:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{task}/comm").read().strip() != thread:
                continue
            fields = open(f"/proc/{pid}/task/{task}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            continue
    return total / tick


class Meter:
    """Where a path's time goes during one phase: wall seconds, CPU seconds of the guest's QEMU and
    (relay path) of the daemon's relay thread, and the relay's frames and bytes each way."""

    def __init__(self, qemu_pid, daemon_pid=None, counters=None):
        self.qemu_pid, self.daemon_pid, self.counters = qemu_pid, daemon_pid, counters

    def sample(self):
        try:
            qemu = cpu_seconds(self.qemu_pid)
        except FileNotFoundError:
            sys.exit(f"the guest's QEMU (pid {self.qemu_pid}) is gone mid-run: a failover (see `ftvm status`; a host "
                     "too loaded for the heartbeat?) or a crash; the figures would mix two guests")
        values = {"wall_s": time.monotonic(), "qemu_cpu_s": qemu}
        if self.daemon_pid:
            values["relay_cpu_s"] = cpu_seconds(self.daemon_pid, "ftvm-relay")
        if self.counters:
            values.update(self.counters())
        return values

    @staticmethod
    def delta(before, after):
        return {key: after[key] - before[key] for key in before}


def run(*args, check=True):
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def link_mtu(ns, dev):
    return json.loads(run("ip", "-n", ns, "-j", "link", "show", "dev", dev))[0]["mtu"]


class Direct:
    """The plain-QEMU guest on a tap in its own client netns, named like a pair (netns and tap ftvm-NAME)."""

    def __init__(self, name):
        self.ns = self.tap = f"ftvm-{name}"
        self.shm = f"/dev/shm/ftvm-{name}-chan"
        self.console = f"/tmp/ftvm-{name}.console"
        self.qemu = None

    def start(self, mtu):
        # The channel header the agent checks, written by the tests' own tool (it tracks ChannelLayout's version).
        run("python3", os.path.join(REPO, "Tests/tools/channel.py"), "format", self.shm)
        run("ip", "netns", "add", self.ns)
        run("ip", "tuntap", "add", "dev", self.tap, "mode", "tap")
        if os.path.exists(self.console):
            os.remove(self.console)
        # The guest learns its MTU as a pair's guests do (PairConfig's kernel command line; images/build.sh's
        # /init sets eth0 from ftvm.mtu=).
        self.qemu = subprocess.Popen([
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-cpu", "qemu64", "-m", "256", "-smp", "1",
            "-display", "none", "-monitor", "none", "-no-reboot", "-serial", f"file:{self.console}",
            "-kernel", f"{IMAGE}/vmlinuz", "-initrd", f"{IMAGE}/initrd.img",
            "-append", f"console=ttyS0 panic=0 quiet ftvm.ip={ADDRESS}/24 ftvm.gw={GATEWAY} ftvm.mtu={mtu}",
            "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02",
            "-object", f"memory-backend-file,id=chan,share=on,mem-path={self.shm},size=1M",
            "-device", "ivshmem-plain,memdev=chan", "-device", "virtio-rng-pci", "-device", "pvpanic",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        # QEMU holds the tap open; move it to the clients' namespace (the host never gets an address), and give
        # it the MTU as ClientNetwork does the pair's tap.
        run("ip", "link", "set", self.tap, "netns", self.ns)
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        run("ip", "-n", self.ns, "addr", "add", f"{GATEWAY}/24", "dev", self.tap)
        run("ip", "-n", self.ns, "link", "set", self.tap, "mtu", str(mtu), "up")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            console = open(self.console, errors="replace").read() if os.path.exists(self.console) else ""
            if "ftvm-init: ERROR" in console:
                sys.exit(f"the direct guest's /init failed (MTU {mtu}?); see {self.console}")
            if "ftvm-agent: ready" in console:
                return
            time.sleep(0.2)
        sys.exit(f"the direct guest did not become ready in 120 s; see {self.console}")

    def meter(self):
        return Meter(self.qemu.pid)

    def stop(self):
        if self.qemu and self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait()
        self.qemu = None
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.tap], capture_output=True)
        if os.path.exists(self.shm):
            os.remove(self.shm)


class Pair:
    """The protected pair under `ftvm up`, its MTU set through a config file (network.mtu)."""

    def __init__(self, name):
        self.name = name
        self.ns = None

    def start(self, mtu):
        with tempfile.NamedTemporaryFile("w", prefix=f"ftvm-bench-{self.name}-", suffix=".yaml") as config:
            # A budget above the upload's size, so the whole upload is logged (protected), as every byte is.
            config.write(f"network:\n  mtu: {mtu}\nlog:\n  connection-budget-mib: {2 * UPLOAD >> 20}\n")
            config.flush()
            run(FTVM, "up", "--name", self.name, "--config", config.name)
        self.ns = self.status()["namespace"]

    def status(self):
        return json.loads(run(FTVM, "status", "--name", self.name, "--json"))

    def meter(self):
        status = self.status()
        primary = next(g["domain"] for g in status["guests"] if g["role"] == "primary")
        qemu = int(open(f"/run/libvirt/qemu/{primary}.pid").read())

        def counters():
            relay = self.status()["relay"]
            return {key: relay[key] for key in ("framesToClients", "bytesToClients", "framesToGuest", "bytesToGuest")}
        return Meter(qemu, status["daemonPID"], counters)

    def stop(self):
        subprocess.run([FTVM, "down", "--name", self.name], capture_output=True)
        self.ns = None


@functools.lru_cache(maxsize=None)
def expected_download(seed):
    return run("python3", os.path.join(REPO, "Tests/tools/splitmix.py"), str(BULK), str(seed)).strip()


def bulk(ns, seed):
    start = time.monotonic()
    out = run("bash", "-c", f"set -o pipefail; ip netns exec {ns} curl -sS --fail --max-time 300 "
              f"'http://{ADDRESS}/bytes/{BULK}?seed={seed}' | sha256sum")
    elapsed = time.monotonic() - start
    if out[:64] != expected_download(seed):
        sys.exit(f"the {BULK}-byte download through {ns} was not byte-exact (SHA-256 differs from splitmix.py's)")
    return BULK / 1e6 / elapsed


def upload(ns, path):
    start = time.monotonic()
    digest = run("ip", "netns", "exec", ns, "curl", "-sS", "--fail", "--max-time", "300", "--data-binary", f"@{path}",
                 f"http://{ADDRESS}/sha256").strip()
    elapsed = time.monotonic() - start
    if digest != run("sha256sum", path)[:64]:
        sys.exit(f"the upload through {ns} was not byte-exact (the service's SHA-256 differs from sha256sum's)")
    return os.path.getsize(path) / 1e6 / elapsed


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out):
    """requests/s, p50 and p99 in ms, and wrk's error counts from `wrk --latency` output."""
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_ms": to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
    }
    errors = dict.fromkeys(ERRORS, 0)
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors["non_2xx"] = int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        for key, value in zip(ERRORS[1:], match.groups()):
            errors[key] = int(value)
    return figures, errors


def load(ns, seconds):
    return parse_wrk(run("ip", "netns", "exec", ns, "wrk", "-t2", "-c16", f"-d{seconds}s", "--latency",
                         f"http://{ADDRESS}/bytes/1024?seed=1"))


def summarize(mtu, samples, errors):
    """One MTU's result: the medians of each path, their ratios (relay / direct), and the error counts."""
    summary = {"mtu": mtu}
    paths = {}
    for name in ("relay", "direct"):
        paths[name] = {key: statistics.median(samples[name][key]) for key, _, _ in FIGURES}
        paths[name]["errors"] = errors[name]
    for key, ratio, _ in FIGURES:
        summary[ratio] = paths["relay"][key] / paths["direct"][key]
    summary.update(paths)
    return summary


def json_line(summary):
    """The --json line for one MTU; refuses a summary a reader could not use."""
    missing = [key for key in ("mtu",) + RATIO_KEYS if type(summary.get(key)) not in (int, float)]
    if missing:
        raise ValueError(f"summary lacks numeric {', '.join(missing)}: {summary}")
    return json.dumps(summary)


def print_table(summary, out):
    rounds, log = summary["rounds"], summary["log"]
    print(f"\nMTU {summary['mtu']}: medians over {rounds} rounds", file=out)
    print(f"{'':18}{'relay':>10}{'direct':>10}{'relay/direct':>14}", file=out)
    for key, ratio, label in FIGURES:
        print(f"{label:18}{summary['relay'][key]:10.2f}{summary['direct'][key]:10.2f}{summary[ratio]:14.3f}",
              file=out)
    for name in ("relay", "direct"):
        counts = summary[name]["errors"]
        print(f"wrk errors, {name:6}: " + ", ".join(f"{key} {counts[key]}" for key in ERRORS), file=out)
    print("where the time goes (CPU seconds / wall seconds, summed over the rounds; relay frames' mean bytes):",
          file=out)
    for name in ("relay", "direct"):
        for phase, figures in summary.get("cpu", {}).get(name, {}).items():
            if not figures:
                continue
            wall = figures["wall_s"]
            line = f"  {name:6} {phase:8}: {wall:6.1f} s, QEMU {figures['qemu_cpu_s'] / wall:5.0%}"
            if "relay_cpu_s" in figures:
                line += f", relay thread {figures['relay_cpu_s'] / wall:5.0%}"
                for way in ("Clients", "Guest"):
                    frames = figures[f"framesTo{way}"]
                    line += f", to {way.lower()} {figures[f'bytesTo{way}'] / max(frames, 1):7.0f} B x {frames}"
            print(line, file=out)
    print(f"relay log: {log['connectionsLogged']} connections, {log['bytesLogged']} client bytes logged, "
          f"{log['bytesTrimmed']} trimmed; unprotected: {log['unprotectedOverBudget']} over budget, "
          f"{log['unprotectedLogFull']} log full, {log['admittedUnlogged']} admitted unlogged", file=out)


def measure(mtu, pair, direct, options, body, out):
    pair.start(mtu)
    direct.start(mtu)
    for ns, dev in ((pair.ns, f"ftvm-{pair.name}"), (direct.ns, direct.tap)):
        if (actual := link_mtu(ns, dev)) != mtu:
            sys.exit(f"{dev} in {ns} runs at MTU {actual}, not {mtu}")
    paths = {"relay": pair.ns, "direct": direct.ns}
    meters = {"relay": pair.meter(), "direct": direct.meter()}
    samples = {name: {key: [] for key, _, _ in FIGURES} for name in paths}
    errors = {name: dict.fromkeys(ERRORS, 0) for name in paths}
    cpu = {name: {phase: {} for phase in PHASES} for name in paths}

    def metered(name, phase, work):
        before = meters[name].sample()
        result = work()
        for key, value in Meter.delta(before, meters[name].sample()).items():
            cpu[name][phase][key] = cpu[name][phase].get(key, 0) + value
        return result

    for round_number in range(options.rounds):
        expected_download(100 + round_number)  # the reference digests, before any meter runs
    for round_number in range(options.rounds):
        for name, ns in paths.items():
            figures = {
                "download_mbps": metered(name, "download", lambda: bulk(ns, 100 + round_number)),
                "upload_mbps": metered(name, "upload", lambda: upload(ns, body)),
            }
            wrk, wrk_errors = metered(name, "wrk", lambda: load(ns, options.seconds))
            figures.update(wrk)
            for key, value in figures.items():
                samples[name][key].append(value)
            for key, value in wrk_errors.items():
                errors[name][key] += value
            failed = sum(wrk_errors.values())
            print(f"MTU {mtu:5} round {round_number + 1} {name:6}: download {figures['download_mbps']:6.1f} MB/s, "
                  f"upload {figures['upload_mbps']:6.1f} MB/s, {figures['rps']:7.0f} req/s, "
                  f"p50 {figures['p50_ms']:6.2f} ms, p99 {figures['p99_ms']:6.2f} ms, wrk errors {failed}",
                  file=out, flush=True)
    summary = summarize(mtu, samples, errors)
    log = pair.status()["log"]
    summary["log"] = {key: log[key] for key in LOG_KEYS}
    summary["rounds"] = options.rounds
    summary["seconds"] = options.seconds
    summary["cpu"] = cpu
    direct.stop()
    pair.stop()
    return summary


def parse_mtus(text):
    try:
        mtus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mtus takes comma-separated integers, not {text!r}")
    if not mtus or any(not 576 <= mtu <= 65000 for mtu in mtus):
        raise argparse.ArgumentTypeError(f"--mtus {text}: each MTU must be in 576...65000 (the pair's network.mtu range)")
    return mtus


def parse_name(text):
    if not NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a name is 1-10 of a-z, 0-9, '-' (it names netns ftvm-NAME)")
    return text


def self_test():
    """Checks the parsing and the --json line on canned wrk output and samples; no guests, no root."""
    wrk = """Running 3s test @ http://10.77.0.2/bytes/1024?seed=1
  Latency Distribution
     50%    2.60ms
     75%    3.10ms
     90%    4.00ms
     99%  812.00us
  17538 requests in 3.00s, 19.92MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:   5846.10
"""
    figures, errors = parse_wrk(wrk)
    assert figures == {"rps": 5846.1, "p50_ms": 2.6, "p99_ms": 0.812}, figures
    assert errors == {"non_2xx": 5, "connect": 1, "read": 2, "write": 3, "timeout": 4}, errors
    clean = parse_wrk(wrk.replace("  Socket errors: connect 1, read 2, write 3, timeout 4\n", "")
                      .replace("  Non-2xx or 3xx responses: 5\n", ""))[1]
    assert clean == dict.fromkeys(ERRORS, 0), clean
    samples = {
        "relay": {"download_mbps": [100, 90, 80], "upload_mbps": [50, 60, 55], "rps": [5000, 5100, 4900],
                  "p50_ms": [2.0, 2.2, 2.1], "p99_ms": [6.0, 5.0, 7.0]},
        "direct": {"download_mbps": [200, 180, 190], "upload_mbps": [55, 55, 55], "rps": [5000, 5000, 5000],
                   "p50_ms": [2.0, 2.0, 2.0], "p99_ms": [5.0, 5.0, 5.0]},
    }
    counts = {"relay": dict.fromkeys(ERRORS, 0), "direct": dict.fromkeys(ERRORS, 0)}
    summary = summarize(9000, samples, counts)
    summary.update(log=dict.fromkeys(LOG_KEYS, 0), rounds=3, seconds=10)
    table = io.StringIO()
    print_table(summary, table)
    assert "download MB/s" in table.getvalue() and "0.474" in table.getvalue(), table.getvalue()
    line = json_line(summary)
    assert "\n" not in line
    parsed = json.loads(line)
    want = {"mtu": 9000, "download_ratio": 90 / 190, "upload_ratio": 1.0, "rps_ratio": 1.0, "p50_ratio": 1.05,
            "p99_ratio": 1.2}
    for key, value in want.items():
        assert isinstance(parsed[key], (int, float)) and abs(parsed[key] - value) < 1e-9, (key, parsed[key], value)
    assert parsed["relay"]["download_mbps"] == 90 and parsed["direct"]["errors"] == counts["direct"], parsed
    try:
        json_line({"mtu": 1500, "download_ratio": 1.0})
    except ValueError:
        pass
    else:
        raise AssertionError("json_line accepted a summary without the ratios")
    assert parse_mtus("1500,9000,65000") == [1500, 9000, 65000]
    for bad in ("1500,x", "100", ""):
        try:
            parse_mtus(bad)
        except argparse.ArgumentTypeError:
            continue
        raise AssertionError(f"--mtus {bad!r} was accepted")
    print("bench_overhead self-test: wrk parsing, error counts, --json lines, --mtus: all right")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per MTU, each path once a round (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk's duration per round (default 10)")
    parser.add_argument("--mtus", type=parse_mtus, default=[1500, 9000, 65000],
                        help="client MTUs, comma-separated; both paths run at each (default 1500,9000,65000)")
    parser.add_argument("--json", action="store_true", help="one JSON object per MTU on stdout; progress on stderr")
    parser.add_argument("--name", type=parse_name, default="ovh", help="the pair's name (default ovh)")
    parser.add_argument("--direct-name", type=parse_name, default="ovh-direct",
                        help="names the direct guest's netns and tap, ftvm-NAME (default ovh-direct)")
    parser.add_argument("--self-test", action="store_true", help="check the parsing and output format, and exit")
    options = parser.parse_args()
    if options.self_test:
        self_test()
        return
    if options.name == options.direct_name:
        parser.error("--name and --direct-name must differ (each names a netns and a tap)")
    out = sys.stderr if options.json else sys.stdout
    pair, direct = Pair(options.name), Direct(options.direct_name)
    pair.stop()
    direct.stop()
    body = f"/tmp/ftvm-bench-upload-{os.getpid()}"
    summaries = []
    try:
        with open(body, "wb") as file:
            file.write(os.urandom(UPLOAD))
        for mtu in options.mtus:
            summary = measure(mtu, pair, direct, options, body, out)
            summaries.append(summary)
            if options.json:
                print(json_line(summary), flush=True)
            else:
                print_table(summary, out)
    finally:
        direct.stop()
        pair.stop()
        if os.path.exists(body):
            os.remove(body)
    print(f"\nrelay / direct by client MTU ({BULK >> 20} MiB downloads, {UPLOAD >> 20} MiB uploads, load: wrk -t2 "
          f"-c16 -d{options.seconds}s on /bytes/1024; medians of {options.rounds} rounds)", file=out)
    print(f"{'MTU':>6}" + "".join(f"{ratio.removesuffix('_ratio'):>10}" for ratio in RATIO_KEYS)
          + f"{'wrk errors relay/direct':>25}", file=out)
    for summary in summaries:
        failed = "/".join(str(sum(summary[name]["errors"].values())) for name in ("relay", "direct"))
        print(f"{summary['mtu']:6}" + "".join(f"{summary[ratio]:10.3f}" for ratio in RATIO_KEYS) + f"{failed:>25}",
              file=out)


if __name__ == "__main__":
    main()
