"""What sampling a node's system metrics costs: the sampler's own CPU against the 1 % budget.

    python bench/bench_system_metrics.py [--seconds S] [--procs N] [--intervals 5,1]

The sampler (jupyter_ext/launcher/sysmetrics.py, as the supervisor runs it: a daemon thread, host
figures from /proc, the node's process tree, NVML where there is a GPU) follows a tree of N
sleeping processes (one parent, N-1 children) for S seconds at each interval, writing
metrics/system_0.jsonl in a scratch folder. Its CPU is the sampler thread's own
(time.thread_time() read inside it, at its end) over the wall time: % of one core, and that
against the 1 % budget (a ratio under 1 is within it); then the same less its start (the
first readings, NVML's import and start where nvidia-ml-py is installed), and the CPU ms of one
sample. Figures, not asserts: these machines are
shared and noisy. Also printed: the host's process count (the tree is found through
/proc/<pid>/task/*/children, so it does not grow with it) and the samples written.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_ext.launcher import sysmetrics  # noqa: E402

BUDGET = 1.0  # % of one core
TREE = ("import subprocess, sys, time\n"
        "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)']) for _ in range({n})]\n"
        "time.sleep(3600)\n")


def measure(interval: float, seconds: float, root_pid: int, scratch: Path) -> tuple[float, float, float, int, int]:
    """(sampler CPU % of one core, the same without its start, ms a sample, samples written,
    lines written) over ``seconds``."""
    out = scratch / f"every-{interval:g}"
    node = sysmetrics.NodeSource(0, sysmetrics.ProcessTree(lambda: [root_pid]), gpus=None)
    sampler = sysmetrics.SystemSampler(out / "metrics", [node], interval, str(out), say=print)
    t0 = time.monotonic()
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    wall = time.monotonic() - t0
    path = out / "metrics" / "system_0.jsonl"
    lines = path.read_text().count("\n") if path.exists() else 0
    steady = sampler.cpu_s - sampler.setup_cpu_s
    return (100.0 * sampler.cpu_s / wall, 100.0 * steady / wall, 1e3 * steady / max(1, sampler.step),
            sampler.step, lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--procs", type=int, default=4, help="processes in the node's tree")
    ap.add_argument("--intervals", default=f"{sysmetrics.SYSTEM_METRICS_DEFAULT_S:g},1")
    args = ap.parse_args()
    tree = subprocess.Popen([sys.executable, "-c", TREE.format(n=max(0, args.procs - 1))])
    try:
        time.sleep(1.0)  # the children started
        found = len(sysmetrics.tree_pids([tree.pid]))
        host = sum(1 for n in os.listdir("/proc") if n.isdigit())
        print(f"node tree: {found} processes; host: {host} processes; {args.seconds:g} s at each interval")
        rows = [("interval", "sampler CPU (% of a core)", "budget", "ratio", "after its start", "ms a sample",
                 "samples", "lines")]
        with tempfile.TemporaryDirectory(prefix="bench-sysmetrics-") as scratch:
            for interval in (float(x) for x in args.intervals.split(",")):
                pct, steady, per, samples, lines = measure(interval, args.seconds, tree.pid, Path(scratch))
                rows.append((f"{interval:g} s", f"{pct:.4f} %", f"{BUDGET:g} %", f"{pct / BUDGET:.4f}",
                             f"{steady:.4f} %", f"{per:.2f}", str(samples), str(lines)))
    finally:
        for pid in sorted(sysmetrics.tree_pids([tree.pid]) - {tree.pid}):  # its children, by id
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        tree.kill()
        tree.wait()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
