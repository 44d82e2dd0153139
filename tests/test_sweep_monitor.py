"""The sweep monitor's data side, against a real sweep on a headless server: what SweepFeed reads
while the sweep runs (and that it stops reading once the sweep is final), the kernel forwarding
the same messages when the page cannot reach the server, and a HyperDriveRun displaying as the
sweep monitor (in a cell and through RunDetails(hd_run).show())."""

from __future__ import annotations

import threading
import time
import types

import pytest

from tests.conftest import SCRIPTS, TERMINAL, Headless

X = [0.5, 0.1, 0.45, 0.9]
SEED = 5  # the grid in the order 0.5, 0.1, 0.45, 0.9: the policy has a best to stop the poor ones by


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One small sweep, followed live both by a SweepFeed (as the browser reads it) and by a
    SweepMonitor's kernel thread (as it forwards it)."""
    from kernel_lib import Experiment, ScriptRunConfig, Workspace
    from kernel_lib.hyperdrive import (BanditPolicy, GridParameterSampling, HyperDriveConfig,
                                       PrimaryMetricGoal, choice)
    from kernel_lib.widgets import SweepMonitor
    from kernel_lib.widgets.sweep_monitor import SweepFeed

    tmp = tmp_path_factory.mktemp("sweep-monitor")
    server = Headless(tmp / "workspace", tmp / "server.log").start()
    try:
        ws = Workspace(tmp / "workspace")
        src = ScriptRunConfig(str(SCRIPTS), "sweep_score.py", ["--epochs", 4, "--sleep", 0.2])
        grid = GridParameterSampling({"--x": choice(*X)}, seed=SEED)
        hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=grid,
                              policy=BanditPolicy(slack_factor=0.1, delay_evaluation=2),
                              primary_metric_name="val_acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                              max_total_runs=4, max_concurrent_runs=1)
        hd_run = Experiment(ws, "sweep-ui").submit(hd)

        widget = SweepMonitor(hd_run, poll_s=0.3)
        sent = []
        widget.send = sent.append  # what would go over the comm to the front end
        widget._on_front_end_msg(widget, {"type": "poll_through_kernel"}, [])

        feed = SweepFeed(ws.client, hd_run.id)
        snapshots = []
        deadline = time.monotonic() + 120
        while not feed.done:
            assert time.monotonic() < deadline, f"the sweep did not end: {hd_run.get_status()}"
            snapshots.append(feed.poll())
            time.sleep(0.3)
        widget._thread.join(timeout=30)
        yield types.SimpleNamespace(ws=ws, hd_run=hd_run.refresh(), feed=feed, snapshots=snapshots,
                                    widget=widget, sent=sent)
    finally:
        server.stop()


def test_the_feed_follows_the_sweep_live_and_stops_once_it_is_final(sweep):
    first, last = sweep.snapshots[0], sweep.snapshots[-1]
    assert first["run"]["status"] == "Running" and last["run"]["status"] in TERMINAL
    # children came while the feed watched: the first look saw fewer finished than the last
    finished = [sum(c["status"] in TERMINAL for c in snap["children"]) for snap in sweep.snapshots]
    assert finished[0] < 4 == finished[-1] == len(last["children"])
    assert finished == sorted(finished)
    ids = {c["id"] for c in last["children"]}
    assert all(c["parent_id"] == sweep.hd_run.id for c in last["children"])
    assert sorted(c["properties"]["hyperparameters"]["--x"] for c in last["children"]) == sorted(X)
    # each child's series: every point of its primary metric, merged over the polls
    series = {}
    for snap in sweep.snapshots:
        series.update(snap["series"])
    assert set(series) == ids == sweep.feed.finished_series
    for child in sweep.hd_run.get_children():
        points = [[p["step"], p["value"]] for p in child.get_metrics_history("val_acc")]
        assert series[child.id] == points and points
        assert max(v for _, v in points) == child._data["best_primary_metric"]
    # a finished child's series is read once after it ended, then never again
    assert sweep.feed.done and sweep.feed.poll()["series"] == {}


def test_the_feed_shows_the_best_child_and_who_the_policy_stopped(sweep):
    from kernel_lib.widgets.sweep_monitor import _note, sort_children

    children = sweep.snapshots[-1]["children"]
    rows = sort_children(children, maximize=True)
    api = sweep.hd_run.get_children_sorted_by_primary_metric()
    assert [r["id"] for r in rows] == [r["run_id"] for r in api]
    values = [r["best_primary_metric"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert rows[0]["id"] == sweep.hd_run.get_best_run_by_primary_metric().id
    assert rows[0]["properties"]["hyperparameters"] == {"--x": 0.5}
    stopped = [c for c in children if c["properties"].get("cancel_reason")]
    assert stopped, "the grid order left nobody to stop: pick another SEED"
    for c in stopped:
        assert c["status"] == "Canceled" and c["properties"]["hyperparameters"]["--x"] in (0.1, 0.9)
        assert _note(c) == "stopped: " + c["properties"]["cancel_reason"]
    assert all(_note(c) == "" for c in children if c not in stopped)


def test_the_kernel_forwards_the_same_messages_and_stops_at_the_end(sweep):
    widget, sent = sweep.widget, sweep.sent
    assert not widget._thread.is_alive()
    kinds = [m["type"] for m in sent]
    assert kinds[-1] == "end" and set(kinds[:-1]) == {"sweep"} and len(kinds) > 2
    assert sent[0]["run"]["status"] == "Running" and sent[-2]["run"]["status"] in TERMINAL
    assert widget.status == sweep.hd_run.status
    series = {}
    for m in sent[:-1]:
        series.update(m["series"])
    assert series == {k: v for snap in sweep.snapshots for k, v in snap["series"].items()}
    assert len(sent[-2]["children"]) == 4


def test_a_sweep_shows_as_the_sweep_monitor_in_a_cell_and_through_run_details(sweep, capsys):
    from kernel_lib import Experiment, Run, RunDetails
    from kernel_lib.widgets import RunMonitor, SweepMonitor

    hd_run = sweep.hd_run
    data, _meta = hd_run._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]  # the static fallback: the children sorted by the metric
    order = [r["run_id"] for r in hd_run.get_children_sorted_by_primary_metric()]
    assert [html.index(i) for i in order] == sorted(html.index(i) for i in order)
    assert "stopped: " in html and hd_run.status in html

    details = RunDetails(hd_run)
    assert details.show() is None  # as Azure's: a cell ending with it shows the monitor once
    shown = details.widget  # (no kernel here: the text summary was printed instead)
    assert shown is None and f"Run {hd_run.id} of experiment sweep-ui" in capsys.readouterr().out
    shown = details.get_widget()
    assert isinstance(shown, SweepMonitor) and shown.run_id == hd_run.id
    # however the parent is found (a plain Run of it too), it is shown as a sweep
    plain = Run(Experiment(sweep.ws, "sweep-ui"), hd_run.id)
    assert isinstance(RunDetails(plain).get_widget(), SweepMonitor)
    child = RunDetails(hd_run.get_children()[0]).get_widget()
    assert isinstance(child, RunMonitor) and not isinstance(child, SweepMonitor)
    shown.close()


def test_closing_the_widget_stops_its_kernel_thread(sweep, monkeypatch):
    """A widget closed while its sweep runs stops polling (no thread left behind)."""
    from kernel_lib.widgets import SweepMonitor, sweep_monitor

    polls = threading.Event()
    widget = SweepMonitor(sweep.hd_run, poll_s=30)
    monkeypatch.setattr(widget, "send", lambda msg: polls.set())
    monkeypatch.setattr(sweep_monitor.SweepFeed, "poll", lambda self: {"type": "sweep", "run": {"status": "Running"}})
    widget._on_front_end_msg(widget, {"type": "poll_through_kernel"}, [])
    assert polls.wait(10)
    widget.close()
    widget._thread.join(timeout=5)
    assert not widget._thread.is_alive()
