"""What a sweep costs over plain submits, and how fast a policy stops a poor child.

    python bench/bench_sweep.py [--children N] [--concurrent C] [--stops K] [--reps R]

Each figure against a baseline measured in the same run, under one real headless server and the
local target (figures, not asserts: these machines are shared and noisy):
  1. overhead per child: a grid sweep of N children of a trivial script (no policy), C at once,
     from submit to the parent's end; against the same N scripts submitted as plain runs, C at a
     time (the next submitted as one ends), from the first submit to the last end. Alternated,
     best of R.
  2. stop latency: K poor children (a Bandit policy, one good child first); each logs its poor
     value and then sleeps. From the point's in-script time to the child's CancelRequested (the
     policy's decision) and to Canceled (its processes gone); against a plain run canceled from
     the client while it sleeps, from the cancel call to Canceled. p50 / max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lib import Experiment, ScriptRunConfig, Workspace  # noqa: E402
from kernel_lib import hyperdrive as hd  # noqa: E402
from common import print_table  # noqa: E402  (bench/common.py)
from tests.conftest import Headless  # noqa: E402

SCRIPT = textwrap.dedent("""
    import argparse, time
    from kernel_lib.tracking import Run
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float, default=1.0)
    p.add_argument("--hold", type=float, default=0.0)
    a = p.parse_args()
    run = Run.get_context()
    if a.x >= 1:
        for i in range(3):
            run.log("acc", a.x)
            run.flush()
    else:
        time.sleep(0.3)
        run.log("acc", a.x)   # the crossing: below best / 1.1 at interval 1
        run.flush()
    time.sleep(a.hold)
""")


def overhead(ws, src_dir, n, c):
    src = ScriptRunConfig(str(src_dir), "job.py", [])
    xs = [1.0 + i for i in range(n)]
    t0 = time.perf_counter()
    sweep = Experiment(ws, "bench-sweep").submit(hd.HyperDriveConfig(
        run_config=src, hyperparameter_sampling=hd.GridParameterSampling({"--x": hd.choice(*xs)}),
        primary_metric_name="acc", primary_metric_goal=hd.PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=n, max_concurrent_runs=c))
    sweep.wait_for_completion()
    swept = time.perf_counter() - t0
    exp = Experiment(ws, "bench-plain")

    def one(x):
        run = exp.submit(ScriptRunConfig(str(src_dir), "job.py", ["--x", x]))
        run.wait_for_completion()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(c) as pool:
        list(pool.map(one, xs))
    plain = time.perf_counter() - t0
    return swept, plain


def stop_latency(ws, src_dir, k):
    src = ScriptRunConfig(str(src_dir), "job.py", ["--hold", 30])
    xs = [1.0] + [0.1 + 0.01 * i for i in range(k)]
    sweep = Experiment(ws, "bench-stop").submit(hd.HyperDriveConfig(
        run_config=src, hyperparameter_sampling=hd.GridParameterSampling({"--x": hd.choice(*xs)}, seed=0),
        policy=hd.BanditPolicy(slack_factor=0.1), primary_metric_name="acc",
        primary_metric_goal=hd.PrimaryMetricGoal.MAXIMIZE, max_total_runs=len(xs), max_concurrent_runs=1))
    sweep.wait_for_completion()
    decide, stopped = [], []
    for kid in sweep.get_children():
        d = kid.get_details()
        if d["status"] != "Canceled" or "BanditPolicy" not in d["properties"].get("cancel_reason", ""):
            continue
        crossing = kid.get_metrics_history("acc")[0]["ts"]
        decide.append(d["properties"]["cancel_requested_at"] - crossing)
        stopped.append(d["ended_at"] - crossing)
    plain = []
    exp = Experiment(ws, "bench-cancel")
    for _ in range(max(3, min(k, 10))):
        run = exp.submit(ScriptRunConfig(str(src_dir), "job.py", ["--x", 0.1, "--hold", 30]))
        while not run.get_metrics_history("acc"):
            time.sleep(0.02)
        t0 = time.time()
        run.cancel()
        d = run.wait_for_completion(raise_on_error=False)
        plain.append(d["ended_at"] - t0)
    return decide, stopped, plain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, default=12)
    ap.add_argument("--concurrent", type=int, default=3)
    ap.add_argument("--stops", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "src").mkdir()
        (tmp / "src" / "job.py").write_text(SCRIPT)
        server = Headless(tmp / "ws", tmp / "server.log").start()
        try:
            ws = Workspace(tmp / "ws")
            results = [overhead(ws, tmp / "src", a.children, a.concurrent) for _ in range(a.reps)]
            swept = min(r[0] for r in results)
            plain = min(r[1] for r in results)
            decide, stopped, cancel = stop_latency(ws, tmp / "src", a.stops)
        finally:
            server.stop()
    per_child = (swept - plain) / a.children
    ms = lambda xs: f"p50 {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"  # noqa: E731
    rows = [
        (f"{a.children} children, {a.concurrent} at once (best of {a.reps})", f"sweep {swept:.2f} s",
         f"plain submits {plain:.2f} s", f"{swept / plain:.2f}"),
        ("overhead per child", f"{per_child * 1000:+.0f} ms", "", ""),
    ]
    if decide:
        rows += [
            (f"metric crossing -> CancelRequested ({len(decide)} stops)", ms(decide), "", ""),
            ("metric crossing -> Canceled", ms(stopped), f"client cancel -> Canceled: {ms(cancel)}",
             f"{statistics.median(stopped) / statistics.median(cancel):.2f}"),
        ]
    else:
        rows.append(("stops", "none: the grid put a poor child first", "", ""))
    print_table(rows)


if __name__ == "__main__":
    main()
