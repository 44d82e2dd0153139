"""Pieces the benchmarks share: the latency reader of a run's stream and the results table."""

from __future__ import annotations

import time


def stream_latencies(ws, run) -> tuple[list[float], list[float]]:
    """Seconds from write to arrival on the run's WebSocket: of each ``t_write`` metric (its value
    is the time it was logged) and of each ``line <i> <time.time()>`` printed to rank 0's log."""
    metric_lat, log_lat = [], []
    for msg in ws.client.stream(run.id):
        now = time.time()
        if msg["type"] == "metrics":
            metric_lat += [now - m["value"] for m in msg["items"] if m["name"] == "t_write"]
        elif msg["type"] == "log" and msg["name"] == "rank_0.txt":
            log_lat += [now - float(line.split()[2]) for line in msg["text"].splitlines()
                        if line.startswith("line ")]
    return metric_lat, log_lat


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    """benchmark | jupyter-train | baseline (same run) | ratio, as aligned columns."""
    header = ("benchmark", "jupyter-train", "baseline (same run)", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
