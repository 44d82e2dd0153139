"""Metric points under load: every line a rank wrote is in the store exactly once, however fast
it was written, whenever the run ended and whatever happened to the server; and a chart of a
million points is drawn from a downsampled view that keeps its extremes.

The runs log with tests/scripts/metric_flood.py: steps 0..n-1 of "loss", whose values are known
(``expected``), with the minimum -5.0 at n//3 and the maximum 7.0 at 2n//3."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from kernel_lib import Experiment, ScriptRunConfig, Workspace


def expected(i: int, n: int) -> float:
    if i == n // 3:
        return -5.0
    if i == 2 * n // 3:
        return 7.0
    return (i * 7919 % 1000003) / 1000003


def flood(ws, scripts_dir, n, via="log", *extra):
    return Experiment(ws, "flood").submit(ScriptRunConfig(str(scripts_dir), "metric_flood.py",
                                                          ["--n", n, "--via", via, *extra]))


def lost_points(points: list[dict], n: int) -> tuple[int, int]:
    """(missing or wrong, duplicated) among the "loss" points of a flood of ``n``."""
    steps = [p["step"] for p in points]
    dup = len(steps) - len(set(steps))
    wrong = sum(1 for p in points if p["step"] is None or not 0 <= p["step"] < n
                or p["value"] != expected(p["step"], n))
    return n - len(set(steps)) + wrong, dup


def stored_count(ws, run_id: str) -> int:
    series = ws.client.get(f"/runs/{run_id}/metrics/series", points=0)["series"]
    return sum(s["count"] for s in series if s["name"] == "loss")


def test_100k_log_calls_in_a_tight_loop_are_all_stored(ws, scripts_dir, fault):
    n = 100_000
    run = flood(ws, scripts_dir, n)
    run.wait_for_completion()
    rest, cursor = [], 0  # every point through REST, page by page
    while page := ws.client.get(f"/runs/{run.id}/metrics", cursor=cursor, limit=100_000)["items"]:
        rest += page
        cursor = page[-1]["id"]
    sdk = run.get_metrics()["loss"]
    missing, dup = lost_points(rest, n)
    wrong_sdk = sum(1 for i, v in enumerate(sdk) if v != expected(i, n)) + abs(len(sdk) - n)
    lost = missing + dup + wrong_sdk
    fault.record("100k run.log() in a tight loop", survived=lost == 0, lost=lost, unit="points")
    assert (missing, dup, wrong_sdk) == (0, 0, 0)
    assert len(rest) == n and [p["id"] for p in rest] == sorted(p["id"] for p in rest)


def test_1m_log_calls_are_in_get_metrics_seconds_after_the_end(ws, scripts_dir, fault):
    n = 1_000_000
    run = flood(ws, scripts_dir, n)
    details = run.wait_for_completion()
    values = run.get_metrics()["loss"]
    after_end = time.time() - details["ended_at"]
    print(f"\n1,000,000 points: all in get_metrics() {after_end:.1f} s after the run ended")
    lost = abs(len(values) - n) + sum(1 for i, v in enumerate(values) if v != expected(i, n))
    fault.record("1M run.log() calls, read back at the end", survived=lost == 0, lost=lost, unit="points",
                 note=f"{after_end:.1f} s after the end")
    assert lost == 0
    assert after_end < 120, f"{after_end:.0f} s from the run's end to its points"  # generous: shared CI

    # the chart's view of the same series: a few thousand points, the global extremes in it
    t0 = time.perf_counter()
    view = run.get_metric_series("loss", points=1000)[0]
    took = time.perf_counter() - t0
    ys = [p[1] for p in view["points"]]
    print(f"downsampled view of {view['count']:,} points: {len(ys)} points in {took * 1e3:.0f} ms")
    kept = min(ys) == -5.0 and max(ys) == 7.0
    fault.record("downsampled 1M-point series keeps its min and max", survived=kept,
                 lost=(min(ys) != -5.0) + (max(ys) != 7.0), unit="points")
    assert view["downsampled"] and view["count"] == n and len(ys) <= 1002
    assert kept, (min(ys), max(ys))
    xs = [p[0] for p in view["points"]]
    assert xs == sorted(xs) and xs[0] == 0 and xs[-1] == n - 1
    assert [xs[ys.index(-5.0)], xs[ys.index(7.0)]] == [n // 3, 2 * n // 3]


def _wait_for_events_file(run_dir: Path, state: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while f'"{state}"' not in (run_dir / "events.jsonl").read_text():
        assert time.monotonic() < deadline, f"the run did not reach {state}"
        time.sleep(0.05)


def test_server_killed_while_a_run_floods_metrics_loses_and_repeats_nothing(
        headless, workspace_dir, scripts_dir, fault):
    server = headless(workspace_dir)
    ws = Workspace(workspace_dir)
    tries = []
    # 1: killed in the middle of the flood; the run ends while no server is up.
    n = 300_000
    run = flood(ws, scripts_dir, n)
    deadline = time.monotonic() + 60
    while stored_count(ws, run.id) == 0:
        assert time.monotonic() < deadline, "no point arrived"
        time.sleep(0.02)
    server.kill(signal.SIGKILL)
    _wait_for_events_file(workspace_dir / "runs" / run.id, "Completed")
    server = headless(workspace_dir)
    tries.append(("server SIGKILLed mid-flood, restarted after the run ended", run, n, None))

    # 2: killed after it recorded the end, with lines still unread (a terminal run left behind).
    n2 = 600_000
    ws = Workspace(workspace_dir)
    run2 = flood(ws, scripts_dir, n2, "file")
    deadline = time.monotonic() + 120
    while ws.client.get(f"/runs/{run2.id}")["status"] != "Completed":
        assert time.monotonic() < deadline, "the flood did not end"
        time.sleep(0.02)
    behind = n2 - stored_count(ws, run2.id)
    server.kill(signal.SIGKILL)
    headless(workspace_dir)
    tries.append(("server SIGKILLed after the end, before the last lines", run2, n2, behind))

    ws = Workspace(workspace_dir)
    for name, r, count, unread in tries:
        r = ws.get_run(r.id)
        status = r.wait_for_completion()["status"]
        missing, dup = lost_points(r.get_metrics_history("loss"), count)
        fault.record(name, survived=status == "Completed" and missing + dup == 0, lost=missing + dup,
                     unit="points", note=f"{unread} unread at the kill" if unread is not None else "")
        print(f"\n{name}: {missing} missing, {dup} twice" +
              (f" ({unread:,} of {count:,} not yet ingested when killed)" if unread is not None else ""))
        assert status == "Completed" and (missing, dup) == (0, 0), name


def test_garbage_lines_and_a_partial_last_line_lose_no_good_point(headless, workspace_dir, scripts_dir, fault):
    server = headless(workspace_dir)
    ws = Workspace(workspace_dir)
    n = 200_000
    run = flood(ws, scripts_dir, n, "file", "--garbage")
    run.wait_for_completion()
    points = run.get_metrics_history("loss")
    missing, dup = lost_points(points, n)
    fault.record("garbage lines and a partial last line among 200k", survived=missing + dup == 0,
                 lost=missing + dup, unit="points")
    assert (missing, dup) == (0, 0)
    assert points[-1]["step"] == n - 1  # the last record, written without its newline
    # what could not be read is named in the server's log, not dropped without a word
    assert "unreadable metric line skipped" in server.log.read_text(errors="replace")
