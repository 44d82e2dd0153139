"""Metric ingest end to end, against a plain JSON-lines parse of the same file (same run).

    python bench/bench_ingest.py [--n 1000000] [--quick]

A real run logs N points with kernel_lib.tracking (``run.log()`` in a tight loop) under a real
headless server; the figures:
  1. end to end: first run.log() -> all N points in the store (polled over REST), points/s,
     and how long after the script's last write the store had them all;
  2. the server's ingest path alone (read, parse, commit: the tailer's code) over the same
     metrics file into a fresh store, against ``json.loads`` of each line of that file;
  3. waiting for the finished run: run.wait_for_completion() (status only) against what it did
     before (every point streamed from cursor 0, websocket-client checking the UTF-8);
  4. get_metrics() of all N points, and the chart's downsampled view;
  5. the server's peak RSS while it ingested the run;
  6. the workspace events feed: first message with 200 runs holding metrics, against the same
     200 runs without any.
Figures, not asserts (these machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lib import Experiment, ScriptRunConfig, Workspace  # noqa: E402
from common import print_table  # noqa: E402  (bench/common.py)
from kernel_lib.client import TrainClient  # noqa: E402

FLOOD = textwrap.dedent("""
    import sys, time
    from kernel_lib.tracking import Run
    run = Run.get_context()
    n = int(sys.argv[1])
    log = run.log
    t0 = time.time()
    for i in range(n):
        log("loss", (i * 7919 % 1000003) / 1000003)
    run.flush()
    print("times", t0, time.time(), flush=True)
""")


def stored(client, run_id: str) -> int:
    return sum(s["count"] for s in client.get(f"/runs/{run_id}/metrics/series", points=0)["series"])


def peak_rss_mib(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields[key] = rest.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def end_to_end(ws, src: Path, n: int) -> dict:
    server_pid = ws.client.get("")["pid"]
    rss_before = peak_rss_mib(server_pid)[0]
    cpu0 = cpu_seconds(server_pid)
    run = Experiment(ws, "bench-ingest").submit(ScriptRunConfig(str(src), "flood.py", [n]))
    polls = 0
    while stored(ws.client, run.id) < n:  # every 50 ms: the poll itself costs the server little
        polls += 1
        if polls % 20 == 0 and ws.client.get(f"/runs/{run.id}")["status"] in ("Failed", "Canceled"):
            raise SystemExit(run.get_log())
        time.sleep(0.05)
    t_all = time.time()
    server_cpu = cpu_seconds(server_pid) - cpu0
    run.wait_for_completion()
    t0, t_written = (float(x) for x in run.get_log().split("times")[1].split()[:2])
    rss, hwm = peak_rss_mib(server_pid)
    return {"run": run, "n": n, "e2e": n / (t_all - t0), "lag": t_all - t_written, "server_cpu": server_cpu,
            "write": n / (t_written - t0), "rss_before": rss_before, "rss": rss, "hwm": hwm}


def ingest_alone(metrics_file: Path, tmp: Path) -> dict:
    """Our points/s and a plain json.loads-per-line's over the same file, in wall time and in
    CPU time (what a busy shared machine's neighbours do not skew): each twice, in turn, the
    better of the two."""
    best = {"ours": 0.0, "plain": 0.0, "ours_cpu": 0.0, "plain_cpu": 0.0}
    for attempt in range(2):
        count, wall, cpu = _ingest_file(metrics_file, tmp / f"alone{attempt}.db")
        best["ours"], best["ours_cpu"] = max(best["ours"], count / wall), max(best["ours_cpu"], count / cpu)
        t0, c0, lines = time.perf_counter(), time.process_time(), 0
        with open(metrics_file, "rb") as f:
            for line in f:
                json.loads(line)
                lines += 1
        best["plain"] = max(best["plain"], lines / (time.perf_counter() - t0))
        best["plain_cpu"] = max(best["plain_cpu"], lines / (time.process_time() - c0))
    best["points"] = count
    return best


def _ingest_file(metrics_file: Path, db: Path) -> tuple[int, float, float]:
    """The tailer's path over a whole file: bounded batches, each parsed and committed.
    Returns (points, wall seconds, CPU seconds)."""
    from jupyter_ext.runs.ingest import parse_metric_lines, read_metric_batch
    from jupyter_ext.store import SQLiteStore

    store = SQLiteStore(str(db))
    store.insert_run({"id": "r", "experiment": "e", "status": "Running", "created_at": 0.0})
    t0, c0, off, count = time.perf_counter(), time.process_time(), 0, 0
    while True:
        data, new_off, _ = read_metric_batch(metrics_file, off, final=True)
        if new_off == off:
            break
        rows, tags, _ = parse_metric_lines(data)
        store.ingest_metrics("r", metrics_file.name, 0, rows, tags, new_off)
        off, count = new_off, count + len(rows)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    store.close()
    return count, wall, cpu


def wait_as_before(client, run_id: str) -> tuple[float, int]:
    """What wait_for_completion() did before: every message, points included, UTF-8 checked."""
    import websocket

    url = client.api_url(f"/runs/{run_id}/stream", {"cursor": 0}).replace("http", "ws", 1)
    t0, points = time.perf_counter(), 0
    conn = websocket.create_connection(url, header=[f"Authorization: token {client.token}"], timeout=None)
    try:
        while raw := conn.recv():
            msg = json.loads(raw)
            points += len(msg.get("items", ()))
            if msg["type"] == "end":
                break
    finally:
        conn.close()
    return time.perf_counter() - t0, points


def events_feed(tmp: Path, runs: int, points_per_run: int) -> float:
    """Median ms to the events feed's first message, on a workspace of ``runs`` finished runs."""
    import websocket

    from jupyter_ext.store import SQLiteStore
    from jupyter_ext.workspace import WorkspaceDir

    wsd = WorkspaceDir(tmp).create()
    store = SQLiteStore(str(wsd.db_path))
    for r in range(runs):
        run_id = f"feed{r:04d}"
        store.insert_run({"id": run_id, "experiment": "feed", "status": "Completed", "created_at": 1e9 + r,
                          "compute_target": "local", "script": "x.py"})
        for name in ("loss", "acc", "lr") if points_per_run else ():
            rows = [(name, i, 1.0 / (i + 1), None, 1e9) for i in range(points_per_run // 3)]
            store.ingest_metrics(run_id, f"rank_0.jsonl.{name}", 0, rows, {}, 0)
    store.close()
    client = TrainClient(str(tmp))
    try:
        url = client.api_url("/events").replace("http", "ws", 1)
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            conn = websocket.create_connection(url, header=[f"Authorization: token {client.token}"],
                                               skip_utf8_validation=True)
            first = json.loads(conn.recv())
            times.append(time.perf_counter() - t0)
            conn.close()
            assert first["type"] == "runs" and len(first["runs"]) == min(runs, 200)
        return statistics.median(times[1:]) * 1e3
    finally:
        client.stop_started_server()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000, help="points the run logs")
    ap.add_argument("--quick", action="store_true", help="200,000 points, smaller feed")
    args = ap.parse_args()
    n = 200_000 if args.quick else args.n
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "src").mkdir()
        (tmp / "src" / "flood.py").write_text(FLOOD)
        ws = Workspace(tmp / "ws")
        ws.client  # starts a headless server for the workspace (stopped below)
        try:
            e2e = end_to_end(ws, tmp / "src", n)
            run = e2e["run"]
            t0 = time.perf_counter()
            run.wait_for_completion()
            wait_now = time.perf_counter() - t0
            # (streaming every point as before takes minutes beyond a million: measured up to one)
            wait_before, streamed = wait_as_before(ws.client, run.id) if n <= 1_000_000 else (None, 0)
            t0 = time.perf_counter()
            values = run.get_metrics()["loss"]
            get_all = time.perf_counter() - t0
            t0 = time.perf_counter()
            view = run.get_metric_series("loss", points=1000)[0]
            view_ms = (time.perf_counter() - t0) * 1e3
            hwm_reads = peak_rss_mib(ws.client.get("")["pid"])[1]
            metrics_file = Path(run.get_details()["run_dir"]) / "metrics" / "rank_0.jsonl"
            alone = ingest_alone(metrics_file, tmp)
        finally:
            ws.client.stop_started_server()
        feed_runs = 50 if args.quick else 200
        feed_metrics = events_feed(tmp / "feed-metrics", feed_runs, 1500 if args.quick else 5000)
        feed_bare = events_feed(tmp / "feed-bare", feed_runs, 0)
    rows = [
        (f"run.log() x {n:,} -> all in the store", f"{e2e['e2e']:,.0f} points/s",
         f"the script wrote {e2e['write']:,.0f} points/s", f"store complete {e2e['lag']:.2f} s after the last write"),
        ("  the server's CPU for that run", f"{e2e['server_cpu']:.2f} s", f"{n / e2e['server_cpu']:,.0f} points per CPU-second",
         "(all of it: tailer, store, event loop, the bench's polls)"),
        ("server ingest (read+parse+commit)", f"{alone['ours']:,.0f} points/s",
         f"plain json.loads per line {alone['plain']:,.0f}/s",
         f"x{alone['ours'] / alone['plain']:.2f} of a plain parse (goal >= 200,000 points/s)"),
        ("  the same, in CPU time", f"{alone['ours_cpu']:,.0f} points/s", f"plain {alone['plain_cpu']:,.0f}/s",
         f"x{alone['ours_cpu'] / alone['plain_cpu']:.2f}"),
        ("wait_for_completion(), run ended", f"{wait_now * 1e3:.0f} ms",
         f"as before: {wait_before:.2f} s ({streamed:,} points streamed)" if wait_before else "as before: -",
         f"x{wait_before / wait_now:.0f} faster" if wait_before else ""),
        (f"get_metrics() of {len(values):,} points", f"{get_all:.2f} s", "", ""),
        ("downsampled view of the series", f"{view_ms:.0f} ms", f"{len(view['points'])} points of {view['count']:,}", ""),
        ("server RSS while ingesting", f"peak {e2e['hwm']:.0f} MiB", f"{e2e['rss_before']:.0f} MiB before the run",
         f"{e2e['rss']:.0f} MiB after; peak {hwm_reads:.0f} MiB once every point was read back"),
        (f"events feed, first message ({feed_runs} runs)", f"{feed_metrics:.1f} ms with metrics",
         f"{feed_bare:.1f} ms without", f"x{feed_metrics / feed_bare:.2f}"),
    ]
    if alone["points"] != n or len(values) != n:
        rows.append(("!! points", f"{len(values):,} read back", f"{alone['points']:,} in the file", f"{n:,} logged"))
    print_table(rows)


if __name__ == "__main__":
    main()
