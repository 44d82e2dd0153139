"""A real browser (Playwright driving Debian's chromium) runs a small hyperparameter sweep from a
notebook cell in JupyterLab and watches the sweep monitor: it follows the sweep live, then shows
every child sorted by the primary metric, one parallel-coordinates line per child, the best child
and why the policy stopped the ones it stopped, and stops polling once the sweep is final."""

from __future__ import annotations


from tests.conftest import SCRIPTS
from tests.e2e.test_lab_monitor import lab_session, open_and_run_all

SEED = 5  # the grid in the order 0.5, 0.1, 0.45, 0.9: the policy has a best to stop the poor ones by
CELLS = [
    "from kernel_lib import Experiment, RunDetails, ScriptRunConfig, Workspace\n"
    "from kernel_lib.hyperdrive import (HyperDriveConfig, GridParameterSampling, BanditPolicy,\n"
    "                                   PrimaryMetricGoal, choice)\n"
    "ws = Workspace.default()",
    f"src = ScriptRunConfig({str(SCRIPTS)!r}, 'sweep_score.py', ['--epochs', 4, '--sleep', 0.2])\n"
    "hd = HyperDriveConfig(run_config=src,\n"
    f"    hyperparameter_sampling=GridParameterSampling({{'--x': choice(0.5, 0.1, 0.45, 0.9)}}, seed={SEED}),\n"
    "    policy=BanditPolicy(slack_factor=0.1, delay_evaluation=2), primary_metric_name='val_acc',\n"
    "    primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=4, max_concurrent_runs=1)\n"
    "hd_run = Experiment(ws, 'sweep-ui').submit(hd)\n"
    "hd_run",
    "RunDetails(hd_run).show();",
]
MONITOR = "[data-testid=jp-train-sweep-monitor]"


def _sorted_by_metric(children):
    """The API's children best first (maximize), those without a value last; ties keep the API's
    order: what the monitor's table must show."""
    have = sorted((c for c in children if c["best_primary_metric"] is not None),
                  key=lambda c: c["best_primary_metric"], reverse=True)
    return have + [c for c in children if c["best_primary_metric"] is None]


def test_a_sweep_from_a_cell_shows_a_live_sweep_monitor(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, CELLS, page, "sweep-monitor") as (url, token, out):
        open_and_run_all(page, url, token)
        monitor = page.locator(MONITOR).first
        monitor.wait_for(timeout=60_000)
        # the second cell's display and RunDetails(hd_run).show() are both sweep monitors
        page.locator(MONITOR).nth(1).wait_for(timeout=30_000)
        page.wait_for_function(
            f"[...document.querySelectorAll('{MONITOR}')].every(m => m.dataset.ended === '1')", timeout=60_000)
        parent_id = monitor.get_attribute("data-run-id")
        assert page.locator(MONITOR).nth(1).get_attribute("data-run-id") == parent_id

        def api(path):
            return page.request.get(f"{url}train/api/{path}{'&' if '?' in path else '?'}token={token}").json()

        parent = api(f"runs/{parent_id}")
        children = api(f"runs?parent={parent_id}")["runs"]
        assert parent["experiment"] == "sweep-ui" and parent["status"] == "Completed"
        # it followed the sweep live: it showed it Running before Completed
        assert monitor.get_attribute("data-statuses") == "Running Completed"
        assert monitor.locator("[data-testid=jp-train-sweep-monitor-status]").inner_text() == "Completed"
        assert "live from the server" in monitor.inner_text()

        # the children, sorted by the primary metric, a column per hyperparameter
        rows = monitor.locator("[data-testid=jp-train-sweep-monitor-children] tbody tr")
        assert rows.count() == len(children) == 4
        expected = _sorted_by_metric(children)
        assert [rows.nth(i).get_attribute("data-run-id") for i in range(4)] == [c["id"] for c in expected]
        for i, child in enumerate(expected):
            row = rows.nth(i)
            shown = row.locator("[data-testid=jp-train-sweep-monitor-value]").inner_text()
            assert abs(float(shown) - child["best_primary_metric"]) <= 1e-3 * abs(child["best_primary_metric"])
            assert float(row.locator("[data-hyperparameter='--x']").inner_text()) == \
                child["properties"]["hyperparameters"]["--x"]
            assert row.get_attribute("data-status") == child["status"]

        # who the policy stopped, and why
        stopped = [c for c in children if c["properties"].get("cancel_reason")]
        assert stopped, "the grid order left nobody to stop: pick another SEED"
        for child in children:
            reason = monitor.locator(f"tr[data-run-id='{child['id']}'] [data-testid=jp-train-sweep-monitor-reason]")
            want = f"stopped: {child['properties']['cancel_reason']}" if child in stopped else ""
            assert reason.inner_text() == want
        assert f"{len(stopped)} stopped by the policy" in \
            monitor.locator("[data-testid=jp-train-sweep-monitor-counts]").inner_text()

        # the best child, as the server has it
        best = monitor.locator("[data-testid=jp-train-sweep-monitor-best]")
        assert best.get_attribute("data-run-id") == parent["sweep"]["best"]["run_id"] == expected[0]["id"]
        assert f"val_acc {parent['sweep']['best']['value']:.4g}" in best.inner_text()

        # one parallel-coordinates line per child (axes: --x and val_acc), and each child's metric
        # over time with every point the server has
        lines = monitor.locator("[data-testid=jp-train-sweep-monitor-parallel] polyline[data-run-id]")
        assert sorted(lines.nth(i).get_attribute("data-run-id") for i in range(lines.count())) == \
            sorted(c["id"] for c in children)
        assert all(len(lines.nth(i).get_attribute("points").split()) == 2 for i in range(4))
        series = monitor.locator("[data-testid=jp-train-sweep-monitor-metric] path[data-run-id]")
        assert series.count() == 4
        for child in children:
            count = api(f"runs/{child['id']}/metrics/series?name=val_acc")["series"][0]["numeric"]
            line = monitor.locator(f"[data-testid=jp-train-sweep-monitor-metric] path[data-run-id='{child['id']}']")
            assert int(line.get_attribute("data-points")) == count
            assert count == 4 or child in stopped
        page.screenshot(path=str(out / "sweep-monitor.png"))

        # final: no more polling
        polls = []
        page.on("request", lambda r: polls.append(r.url) if "train/api/runs" in r.url else None)
        page.wait_for_timeout(2500)  # more than the poll interval
        assert polls == []
