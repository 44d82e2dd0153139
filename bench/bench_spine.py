"""Benchmarks of the spine, each against a baseline measured in the same run.

    python bench/bench_spine.py [--quick]

Prints a table; figures, not asserts (these machines are shared and noisy).
  1. submit -> first line of the user's script   vs  a bare `python script.py` start
  2. run.log() per call in a real run, the encode  vs  a plain buffered JSON-lines write (and
     and write at flush included; and how many of      MLflow's log_metric where mlflow is installed)
     the points logged arrived in the store
  3. script write -> WebSocket subscriber latency p50 / p99 (metrics and log lines)
  4. resubmit of an unchanged 2,000-file folder  vs  the first submit of it
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lib import Experiment, ScriptRunConfig, Workspace  # noqa: E402
from common import stream_latencies, print_table  # noqa: E402  (bench/common.py)

FIRST_LINE = "import time; print('first', time.time(), flush=True)\n"
STREAM_SCRIPT = textwrap.dedent("""
    import sys, time
    from kernel_lib.tracking import Run
    run = Run.get_context()
    n = int(sys.argv[1])
    for i in range(n):
        t = time.time()
        run.log("t_write", t)
        print("line", i, repr(t), flush=True)
        time.sleep(0.02)
""")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def bench_start(ws, tmp: Path, n: int) -> tuple[float, float]:
    src = tmp / "first"
    src.mkdir()
    (src / "first.py").write_text(FIRST_LINE)
    bare = []
    for _ in range(n):
        t0 = time.time()
        out = subprocess.run([sys.executable, str(src / "first.py")], capture_output=True, text=True)
        bare.append(float(out.stdout.split()[1]) - t0)
    spine = []
    exp = Experiment(ws, "bench-start")
    for _ in range(n):
        t0 = time.time()
        run = exp.submit(ScriptRunConfig(str(src), "first.py"))
        run.wait_for_completion()
        spine.append(float(run.get_log().split()[1]) - t0)
    return statistics.median(bare), statistics.median(spine)


LOG_SCRIPT = textwrap.dedent("""
    import json, os, sys, time, timeit
    from kernel_lib.tracking import Run
    run = Run.get_context()
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    def ours():  # the calls, the background flushes they cause, and the last flush: all of it
        t0 = time.perf_counter()
        for _ in range(n):
            run.log("loss", 0.5)
        run.flush()
        return (time.perf_counter() - t0) / n
    def plain():  # the same records encoded and written by hand, buffered, flushed at the end
        with open("plain.jsonl", "w", buffering=1 << 16) as f:
            t0 = time.perf_counter()
            for i in range(n):
                f.write(json.dumps({"k": "m", "n": "loss", "v": 0.5, "s": i, "t": time.time()}) + "\\n")
            f.flush()
            return (time.perf_counter() - t0) / n
    res = {"ours": min(ours() for _ in range(reps)), "plain": min(plain() for _ in range(reps)),
           "logged": n * reps}
    try:
        import mlflow
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store, as ours
        mlflow.set_tracking_uri("file://" + os.path.abspath("mlruns"))
        with mlflow.start_run():
            k = 200
            res["mlflow"] = min(timeit.repeat(lambda: mlflow.log_metric("loss", 0.5), number=k, repeat=3)) / k
    except Exception as exc:  # not installed, or it refused: say so in the table
        res["mlflow_error"] = type(exc).__name__
    print("RESULT", json.dumps(res), flush=True)
""")


def bench_log(ws, tmp: Path, calls: int, reps: int = 5) -> dict:
    """run.log() in a real run under the server, the encode at flush included, against a plain
    buffered JSON-lines write in the same run; then count what arrived in the store."""
    src = tmp / "logbench"
    src.mkdir()
    (src / "logbench.py").write_text(LOG_SCRIPT)
    run = Experiment(ws, "bench-log").submit(ScriptRunConfig(str(src), "logbench.py", [calls, reps]))
    if run.wait_for_completion(raise_on_error=False)["status"] != "Completed":
        raise SystemExit(run.get_log())
    res = json.loads(run.get_log().split("RESULT", 1)[1])
    series = ws.client.get(f"/runs/{run.id}/metrics/series", name="loss", points=0)["series"]
    res["arrived"] = series[0]["count"] if series else 0
    return res


def bench_stream(ws, tmp: Path, n: int) -> tuple[list[float], list[float]]:
    src = tmp / "stream"
    src.mkdir()
    (src / "stream.py").write_text(STREAM_SCRIPT)
    run = Experiment(ws, "bench-stream").submit(ScriptRunConfig(str(src), "stream.py", [n]))
    return stream_latencies(ws, run)


def bench_snapshot(ws, tmp: Path, files: int) -> tuple[float, float, float]:
    src = tmp / "many"
    for i in range(files):
        d = src / f"pkg{i % 40}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(f"# module {i}\n" + "x = 1\n" * 200)
    (src / "train.py").unlink(missing_ok=True)
    (src / "pkg0" / "mod0.py").write_text("print('ok')\n")
    exp = Experiment(ws, "bench-snap")
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        run = exp.submit(ScriptRunConfig(str(src), "pkg0/mod0.py"))
        times.append(time.perf_counter() - t0)
        run.wait_for_completion()
    from jupyter_ext.snapshots import SnapshotStore

    store = SnapshotStore(tmp / "snapcheck")
    t0 = time.perf_counter()
    store.take(str(src), 10**10, 10**6)
    first_take = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.take(str(src), 10**10, 10**6)
    again_take = time.perf_counter() - t0
    return times[0], times[1], again_take / first_take


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    reps = 3 if args.quick else 10
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ws = Workspace(tmp / "ws")
        ws.client  # starts a headless server for the workspace (stopped below)
        try:
            bare, spine = bench_start(ws, tmp, reps)
            logc = bench_log(ws, tmp, 20_000 if args.quick else 200_000)
            m_lat, l_lat = bench_stream(ws, tmp, 100 if args.quick else 300)
            first, again, take_ratio = bench_snapshot(ws, tmp, 2000 - 1)
        finally:
            ws.client.stop_started_server()
    rows = [
        ("submit -> first script line", f"{spine * 1e3:.0f} ms", f"bare python start {bare * 1e3:.0f} ms",
         f"+{(spine - bare) * 1e3:.0f} ms (goal <= +300 ms)"),
        ("run.log() per call, flush included", f"{logc['ours'] * 1e6:.2f} us",
         f"plain JSON-lines write {logc['plain'] * 1e6:.2f} us",
         f"x{logc['ours'] / logc['plain']:.2f}; {logc['arrived']:,} of {logc['logged']:,} points in the store"),
    ]
    if "mlflow" in logc:
        rows.append(("", "", f"mlflow log_metric {logc['mlflow'] * 1e6:.0f} us",
                     f"x{logc['ours'] / logc['mlflow']:.4f}"))
    else:
        rows.append(("", "", f"mlflow: {logc.get('mlflow_error', 'not installed')}", "-"))
    rows += [
        ("write -> WebSocket, metrics", f"p50 {pct(m_lat, 50) * 1e3:.0f} ms / p99 {pct(m_lat, 99) * 1e3:.0f} ms",
         f"{len(m_lat)} points", "goal 50 / 250 ms"),
        ("write -> WebSocket, log lines", f"p50 {pct(l_lat, 50) * 1e3:.0f} ms / p99 {pct(l_lat, 99) * 1e3:.0f} ms",
         f"{len(l_lat)} lines", "goal 50 / 250 ms"),
        ("resubmit 2,000 unchanged files", f"{again * 1e3:.0f} ms", f"first submit {first * 1e3:.0f} ms",
         f"{again / first * 100:.0f} % of first (snapshot step alone: {take_ratio * 100:.1f} %; goal <= 5 %)"),
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
