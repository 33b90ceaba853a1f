"""Overhead of the ftvm relay (with the FT-TCP connection log) against the direct path, per client MTU.

The same guest and service are measured side by side in one run:
  relay:  a protected pair (`ftvm up`): client netns -> tap -> ftvm relay + log -> guest link -> QEMU
  direct: the fair baseline: the pair's primary's own libvirt definition (memory, vCPUs, CPU model, devices,
          kernel command line, MAC) started again as a transient domain whose NIC is a plain tap moved into its
          own client netns: client netns -> tap -> QEMU. No relay, no log.
For each MTU in --mtus both paths are brought up at that MTU (the pair through its `network.mtu`
setting; the copy inherits the primary's `ftvm.mtu=` kernel argument and gets the same tap MTU), then
rounds alternate between the paths so drift on the busy 2-core machine hits both alike. Each round:
a bulk download and an upload, each checked byte for byte, then wrk on a small response with 16
connections and with one (requests/s, p50 and p99 latency, and wrk's errors: non-2xx answers,
socket errors, timeouts).

The default output is a table per MTU and a summary. With --json, stdout carries one JSON object
per line, one per MTU, with the keys mtu, download_ratio, upload_ratio, rps_ratio, p50_ratio,
p99_ratio, c1_rps_ratio, c1_p50_ratio, c1_p99_ratio (relay / direct, medians over the rounds),
c1_p50_added_us (relay's p50 less direct's with one connection: what the relay adds to an
exchange), the absolute figures under "relay" and "direct", and under "cpu" where each phase's
time went (the relay thread's CPU, its schedstat run and wait-for-CPU time, frames); progress
goes to stderr.

usage: scripts/bench_overhead.py [--rounds N] [--seconds S] [--mtus 1500,9000,65000] [--json]
                                 [--name PAIR] [--direct-name NAME] [--relay-priority 0-99] [--self-test]
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
from xml.etree import ElementTree

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FTVM = os.path.join(REPO, ".build", "release", "ftvm")  # built by scripts/prepare.sh
IMAGE = "/var/lib/ftvm/images/default"
ADDRESS = "10.77.0.2"
GATEWAY = "10.77.0.1"
BULK = 64 << 20
UPLOAD = 32 << 20
NAME = re.compile(r"^[a-z0-9-]{1,10}$")  # a pair's name (ftvm up --help); it names netns and tap
RATIO_KEYS = ("download_ratio", "upload_ratio", "rps_ratio", "p50_ratio", "p99_ratio", "c1_rps_ratio", "c1_p99_ratio")
# Median figure -> its ratio key and its label in the table.
FIGURES = [("download_mbps", "download_ratio", "download MB/s"), ("upload_mbps", "upload_ratio", "upload MB/s"),
           ("rps", "rps_ratio", "requests/s"), ("p50_ms", "p50_ratio", "p50 latency ms"),
           ("p99_ms", "p99_ratio", "p99 latency ms"), ("c1_rps", "c1_rps_ratio", "1 conn: req/s"),
           ("c1_p50_ms", "c1_p50_ratio", "1 conn: p50 ms"), ("c1_p99_ms", "c1_p99_ratio", "1 conn: p99 ms")]
ERRORS = ("non_2xx", "connect", "read", "write", "timeout")
# What the relay's log did during an MTU's rounds (`ftvm status --json`'s "log"): a connection it could not hold
# is served unprotected, never refused, so these say whether the run measured protected traffic.
LOG_KEYS = ("connectionsLogged", "bytesLogged", "bytesTrimmed", "unprotectedOverBudget", "unprotectedLogFull",
            "admittedUnlogged")


PHASES = ("download", "upload", "wrk", "wrk1")


def thread_files(pid, thread, name):
    """The text of /proc/PID/task/TID/`name` for each thread of `pid` named `thread` (threads that end meanwhile
    are left out)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{task}/comm").read().strip() == thread:
                yield open(f"/proc/{pid}/task/{task}/{name}").read()
        except FileNotFoundError:
            continue


def stat_ticks(text):
    """utime + stime of a stat line (fields counted after the command's closing parenthesis)."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid, thread=None):
    """User + system CPU seconds of process `pid`, or of its threads named `thread` only."""
    tick = os.sysconf("SC_CLK_TCK")
    if thread is None:
        return stat_ticks(open(f"/proc/{pid}/stat").read()) / tick
    return sum(stat_ticks(text) for text in thread_files(pid, thread, "stat")) / tick


def schedstat(pid, thread):
    """Seconds on a CPU, seconds runnable but waiting for one, and times scheduled in, summed over the threads
    of `pid` named `thread` (/proc/PID/task/TID/schedstat)."""
    total = [0, 0, 0]
    for text in thread_files(pid, thread, "schedstat"):
        total = [a + int(b) for a, b in zip(total, text.split())]
    return total[0] / 1e9, total[1] / 1e9, total[2]


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
            values["relay_run_s"], values["relay_wait_s"], values["relay_slices"] = schedstat(
                self.daemon_pid, "ftvm-relay")
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
    """The fair baseline: the pair's own primary, defined again as a transient libvirt domain (same memory, vCPUs,
    CPU model, kernel command line, devices and MAC) whose NIC is a plain tap moved into its own client netns:
    client netns -> tap -> QEMU. No relay, no log. Named like a pair (netns and tap ftvm-NAME, domain
    ftvm-NAME-direct)."""

    def __init__(self, name):
        self.ns = self.tap = f"ftvm-{name}"
        self.domain = f"ftvm-{name}-direct"
        self.shm = f"ftvm-{name}-chan"
        self.console = f"/var/log/ftvm/{self.domain}.console"
        self.started = False

    def definition(self, primary_xml):
        """The primary's live definition with only its identity, link, channel and console changed."""
        domain = ElementTree.fromstring(primary_xml)
        # Runtime labels and aliases of the running primary; libvirt gives the copy its own.
        for tag in ("uuid", "metadata", "genid", "seclabel"):
            for element in domain.findall(tag):
                domain.remove(element)
        for parent in domain.iter():
            for alias in parent.findall("alias"):
                parent.remove(alias)
        domain.find("name").text = self.domain
        devices = domain.find("devices")
        interfaces = devices.findall("interface")
        if len(interfaces) != 1:
            sys.exit(f"the pair's primary has {len(interfaces)} interfaces; the baseline copies exactly one")
        interface = interfaces[0]
        interface.find("target").attrib.update(dev=self.tap, managed="no")
        devices.find("shmem").set("name", self.shm)
        for log in devices.iter("log"):
            log.set("file", self.console)
        for serial in devices.findall("serial") + devices.findall("console"):
            # Live definitions name the pty they got; a new domain gets its own.
            for source in serial.findall("source"):
                serial.remove(source)
            serial.attrib.pop("tty", None)
        return ElementTree.tostring(domain, encoding="unicode")

    def start(self, mtu, primary_xml):
        with tempfile.NamedTemporaryFile("w", prefix=f"{self.domain}-", suffix=".xml") as file:
            file.write(self.definition(primary_xml))
            file.flush()
            # The channel header the agent checks (Tests/tools/channel.py tracks ChannelLayout's version), owned by
            # the user QEMU runs as, as the daemon makes it.
            run("python3", os.path.join(REPO, "Tests/tools/channel.py"), "format", f"/dev/shm/{self.shm}")
            run("chown", "libvirt-qemu", f"/dev/shm/{self.shm}")
            run("ip", "netns", "add", self.ns)
            run("ip", "tuntap", "add", "dev", self.tap, "mode", "tap")
            self.started = True
            run("virsh", "-q", "create", file.name)
        # QEMU holds the tap open; move it to the clients' namespace (the host never gets an address), and give
        # it the MTU as ClientNetwork does the pair's tap.
        run("ip", "link", "set", self.tap, "netns", self.ns)
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        run("ip", "-n", self.ns, "addr", "add", f"{GATEWAY}/24", "dev", self.tap)
        run("ip", "-n", self.ns, "link", "set", self.tap, "mtu", str(mtu), "up")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            probe = subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-sf", "--max-time", "2",
                                    f"http://{ADDRESS}/bytes/1?seed=1"], capture_output=True)
            if probe.returncode == 0:
                return
            time.sleep(0.5)
        sys.exit(f"the baseline domain {self.domain} did not serve in 120 s; see {self.console}")

    def meter(self):
        return Meter(int(open(f"/run/libvirt/qemu/{self.domain}.pid").read()))

    def stop(self):
        subprocess.run(["virsh", "-q", "destroy", self.domain], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.tap], capture_output=True)
        if os.path.exists(f"/dev/shm/{self.shm}"):
            os.remove(f"/dev/shm/{self.shm}")
        self.started = False


class Pair:
    """The protected pair under `ftvm up`, its MTU set through a config file (network.mtu)."""

    def __init__(self, name, relay_priority):
        self.name = name
        self.relay_priority = relay_priority
        self.ns = None

    def start(self, mtu):
        with tempfile.NamedTemporaryFile("w", prefix=f"ftvm-bench-{self.name}-", suffix=".yaml") as config:
            # A budget above the upload's size, so the whole upload is logged (protected), as every byte is.
            config.write(f"network:\n  mtu: {mtu}\n  relay-priority: {self.relay_priority}\n"
                         f"log:\n  connection-budget-mib: {2 * UPLOAD >> 20}\n")
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

    def primary_xml(self):
        primary = next(g["domain"] for g in self.status()["guests"] if g["role"] == "primary")
        return run("virsh", "dumpxml", primary)

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


def load(ns, seconds, connections):
    threads = min(2, connections)
    return parse_wrk(run("ip", "netns", "exec", ns, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                         "--latency", f"http://{ADDRESS}/bytes/1024?seed=1"))


def summarize(mtu, samples, errors):
    """One MTU's result: the medians of each path, their ratios (relay / direct), and the error counts."""
    summary = {"mtu": mtu}
    paths = {}
    for name in ("relay", "direct"):
        paths[name] = {key: statistics.median(samples[name][key]) for key, _, _ in FIGURES}
        paths[name]["errors"] = errors[name]
    for key, ratio, _ in FIGURES:
        summary[ratio] = paths["relay"][key] / paths["direct"][key]
    # What one exchange on one connection costs more through the relay: two crossings, one each way.
    summary["c1_p50_added_us"] = (paths["relay"]["c1_p50_ms"] - paths["direct"]["c1_p50_ms"]) * 1000
    summary.update(paths)
    return summary


def json_line(summary):
    """The --json line for one MTU; refuses a summary a reader could not use."""
    missing = [key for key in ("mtu", "c1_p50_added_us") + RATIO_KEYS if type(summary.get(key)) not in (int, float)]
    if missing:
        raise ValueError(f"summary lacks numeric {', '.join(missing)}: {summary}")
    return json.dumps(summary)


def print_table(summary, out):
    rounds, log = summary["rounds"], summary["log"]
    print(f"\nMTU {summary['mtu']}: medians over {rounds} rounds; relay thread "
          f"{summary.get('relay_scheduling') or 'scheduling unknown'}", file=out)
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
                frames = max(figures["framesToClients"] + figures["framesToGuest"], 1)
                slices = max(figures["relay_slices"], 1)
                line += (f", relay thread {figures['relay_cpu_s'] / wall:5.0%} ({figures['relay_run_s'] / frames * 1e6:.1f}"
                         f" us a frame; {figures['relay_slices'] / frames:.2f} wake-ups a frame, each waited "
                         f"{figures['relay_wait_s'] / slices * 1e6:.1f} us for a CPU)")
                for way in ("Clients", "Guest"):
                    frames = figures[f"framesTo{way}"]
                    line += f", to {way.lower()} {figures[f'bytesTo{way}'] / max(frames, 1):7.0f} B x {frames}"
            print(line, file=out)
    print(f"relay log: {log['connectionsLogged']} connections, {log['bytesLogged']} client bytes logged, "
          f"{log['bytesTrimmed']} trimmed; unprotected: {log['unprotectedOverBudget']} over budget, "
          f"{log['unprotectedLogFull']} log full, {log['admittedUnlogged']} admitted unlogged", file=out)


def measure(mtu, pair, direct, options, body, out):
    pair.start(mtu)
    direct.start(mtu, pair.primary_xml())
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
            wrk, wrk_errors = metered(name, "wrk", lambda: load(ns, options.seconds, 16))
            figures.update(wrk)
            wrk1, wrk1_errors = metered(name, "wrk1", lambda: load(ns, options.seconds, 1))
            figures.update({f"c1_{key}": value for key, value in wrk1.items()})
            wrk_errors = {key: value + wrk1_errors[key] for key, value in wrk_errors.items()}
            for key, value in figures.items():
                samples[name][key].append(value)
            for key, value in wrk_errors.items():
                errors[name][key] += value
            failed = sum(wrk_errors.values())
            print(f"MTU {mtu:5} round {round_number + 1} {name:6}: download {figures['download_mbps']:6.1f} MB/s, "
                  f"upload {figures['upload_mbps']:6.1f} MB/s, {figures['rps']:7.0f} req/s, "
                  f"p50 {figures['p50_ms']:6.2f} ms, p99 {figures['p99_ms']:6.2f} ms; 1 conn {figures['c1_rps']:6.0f} req/s, "
                  f"p50 {figures['c1_p50_ms']:6.3f} ms, p99 {figures['c1_p99_ms']:6.3f} ms; wrk errors {failed}",
                  file=out, flush=True)
    summary = summarize(mtu, samples, errors)
    log = pair.status()["log"]
    summary["log"] = {key: log[key] for key in LOG_KEYS}
    summary["rounds"] = options.rounds
    summary["seconds"] = options.seconds
    summary["cpu"] = cpu
    summary["relay_scheduling"] = pair.status().get("relayScheduling")
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
                  "p50_ms": [2.0, 2.2, 2.1], "p99_ms": [6.0, 5.0, 7.0], "c1_rps": [1400, 1500, 1450],
                  "c1_p50_ms": [0.68, 0.70, 0.69], "c1_p99_ms": [1.2, 1.1, 1.3]},
        "direct": {"download_mbps": [200, 180, 190], "upload_mbps": [55, 55, 55], "rps": [5000, 5000, 5000],
                   "p50_ms": [2.0, 2.0, 2.0], "p99_ms": [5.0, 5.0, 5.0], "c1_rps": [2000, 2000, 2000],
                   "c1_p50_ms": [0.48, 0.49, 0.47], "c1_p99_ms": [1.0, 1.0, 1.0]},
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
            "p99_ratio": 1.2, "c1_rps_ratio": 0.725, "c1_p99_ratio": 1.2, "c1_p50_added_us": 210.0}
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
    parser.add_argument("--relay-priority", type=int, choices=range(0, 100), default=1, metavar="0-99",
                        help="the pair's network.relay-priority (default 1, as ftvm's; 0: a normal relay thread)")
    parser.add_argument("--self-test", action="store_true", help="check the parsing and output format, and exit")
    options = parser.parse_args()
    if options.self_test:
        self_test()
        return
    if options.name == options.direct_name:
        parser.error("--name and --direct-name must differ (each names a netns and a tap)")
    out = sys.stderr if options.json else sys.stdout
    pair, direct = Pair(options.name, options.relay_priority), Direct(options.direct_name)
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
          f"-c16 and -t1 -c1, -d{options.seconds}s each, on /bytes/1024; medians of {options.rounds} rounds)", file=out)
    print(f"{'MTU':>6}" + "".join(f"{ratio.removesuffix('_ratio'):>13}" for ratio in RATIO_KEYS)
          + f"{'c1_p50 +us':>12}{'wrk errors relay/direct':>25}", file=out)
    for summary in summaries:
        failed = "/".join(str(sum(summary[name]["errors"].values())) for name in ("relay", "direct"))
        print(f"{summary['mtu']:6}" + "".join(f"{summary[ratio]:13.3f}" for ratio in RATIO_KEYS)
              + f"{summary['c1_p50_added_us']:12.0f}{failed:>25}",
              file=out)


if __name__ == "__main__":
    main()
