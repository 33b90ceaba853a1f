"""What the benchmarks under scripts/ share: a pair driven through the `ftvm` command line, and
how a series of figures is printed. Not a benchmark itself; the benchmarks import it."""
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FTVM = os.path.join(REPO, ".build", "release", "ftvm")  # built by scripts/prepare.sh


class PairCLI:
    """`ftvm SUBCOMMAND ... --name NAME` for one pair. A command that fails (or does not answer
    within its timeout) ends the benchmark with the command's output."""

    def __init__(self, name, binary=FTVM):
        self.name = name
        self.binary = binary

    def ftvm(self, *args, check=True, timeout=None):
        try:
            result = subprocess.run([self.binary, *args, "--name", self.name], capture_output=True, text=True,
                                    timeout=timeout)
        except subprocess.TimeoutExpired:
            sys.exit(f"ftvm {' '.join(args)} --name {self.name}: no answer within {timeout} s")
        if check and result.returncode != 0:
            sys.exit(f"ftvm {' '.join(args)} --name {self.name} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def status(self):
        return json.loads(self.ftvm("status", "--json", timeout=30))

    def wait(self, predicate, timeout, what):
        """The first status for which `predicate` holds, asked every 0.1 s for `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.status()
            if predicate(current):
                return current
            time.sleep(0.1)
        sys.exit(f"timed out after {timeout} s waiting for {what}")

    def down(self):
        subprocess.run([self.binary, "down", "--name", self.name], capture_output=True, timeout=120)


def summary(values, width=7, count=False):
    """Median, p95 and maximum of `values` (and how many, with `count`), or n/a for none."""
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    text = f"median {statistics.median(ordered):{width}.1f}  p95 {p95:{width}.1f}  max {ordered[-1]:{width}.1f}"
    return text + (f"  (n={len(ordered)})" if count else "")
