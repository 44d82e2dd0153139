"""A hyperparameter sweep in the JupyterLab panel, driven in Debian's chromium by Playwright: the
sweep started through the SDK is one row whose children open under it (their hyperparameters,
a stopped child's policy reason), and its view shows the children sorted by the primary metric,
a parallel-coordinates chart with a line per child and the metric of every child over time,
updated live while the sweep runs. Values are checked against the REST API."""

from __future__ import annotations

import time

from kernel_lib import Experiment, ScriptRunConfig, Workspace
from kernel_lib.client import TrainClient
from kernel_lib.hyperdrive import BanditPolicy, GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice
from tests.conftest import SCRIPTS
from tests.e2e.test_lab_monitor import lab_session
from tests.e2e.test_sidebar import Lab

# With this seed the grid starts at x=0.5 (val_acc 1.0), so the BanditPolicy (slack 10 %, from
# interval 2) stops the children with x=0.1 and x=0.9 (val_acc 0.84 at best). The test checks
# that from the REST API; if a sampler change reorders the grid, pick a seed that starts high.
SEED = 5
GRID = (0.5, 0.1, 0.45, 0.9)


def start_sweep(lab_dir, url, token):
    ws_dir = str(lab_dir / "workspace")
    ws = Workspace(ws_dir, _client=TrainClient(ws_dir, url=url, token=token, start=False))
    src = ScriptRunConfig(str(SCRIPTS), "sweep_score.py", ["--epochs", 4, "--sleep", 0.2])
    hd = HyperDriveConfig(run_config=src,
                          hyperparameter_sampling=GridParameterSampling({"--x": choice(*GRID)}, seed=SEED),
                          policy=BanditPolicy(slack_factor=0.1, delay_evaluation=2),
                          primary_metric_name="val_acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=4, max_concurrent_runs=1)
    return Experiment(ws, "hd").submit(hd)


def wait_text(page, selector, text, timeout=10_000):
    page.wait_for_function("([sel, t]) => document.querySelector(sel)?.textContent === t",
                           arg=[selector, text], timeout=timeout)


def test_sweep_is_one_row_that_opens_into_its_children_and_a_sorted_view(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, ["print('hello')"], page, "sweep-view") as (url, token, out):
        lab = Lab(page, url, token)
        lab.open_panel()
        t0 = time.monotonic()
        sweep_id = start_sweep(tmp_path, url, token).id

        # One row for the sweep, with its badge; its children open under it, live.
        row = lab.row(sweep_id)
        row.wait_for(timeout=10_000)
        assert row.get_attribute("data-sweep") == "true"
        assert "sweep" in row.locator(".jp-train-sweep-badge").inner_text().lower()
        toggle = row.locator("[data-testid=jp-train-sweep-toggle]")
        assert toggle.get_attribute("aria-expanded") == "false"
        children_sel = f"[data-testid=jp-train-run-row][data-parent-id='{sweep_id}']"
        assert page.locator(children_sel).count() == 0
        toggle.click()
        page.locator(children_sel).first.wait_for(timeout=15_000)
        assert row.locator("[data-testid=jp-train-sweep-toggle]").get_attribute("aria-expanded") == "true"

        # The sweep view, opened while the sweep runs, follows it to the end.
        row.locator(".jp-train-run-name").click()
        view = page.locator(f"[data-testid=jp-train-sweep-view][data-run-id='{sweep_id}']")
        view.wait_for(timeout=10_000)
        first_rows = view.locator("[data-testid=jp-train-sweep-table] tr[data-run-id]").count()
        lab.row_status(sweep_id, "Completed", timeout=60_000)
        page.wait_for_function("el => el.dataset.status === 'Completed' && el.dataset.children === '4'",
                               arg=view.element_handle(), timeout=15_000)
        print(f"sweep done {time.monotonic() - t0:.1f} s after its submit; "
              f"the view had {first_rows} child row(s) when it opened")

        children = lab.call("GET", f"runs?parent={sweep_id}")["runs"]
        assert len(children) == 4
        by_id = {c["id"]: c for c in children}
        stopped = [c for c in children if c["status"] == "Canceled" and c["properties"].get("cancel_reason")]
        assert stopped, (f"no child was stopped by the policy (grid order {[c['properties']['hyperparameters'] for c in children]}); "
                         "choose a SEED whose grid starts at x=0.5 or 0.45")
        summary = lab.call("GET", f"runs/{sweep_id}")["sweep"]

        # Sidebar: still one top-level row in the experiment, four child rows under it.
        page.wait_for_function("sel => document.querySelectorAll(sel).length === 4", arg=children_sel,
                               timeout=10_000)
        top = page.locator("[data-experiment=hd] [data-testid=jp-train-run-row]:not([data-parent-id])")
        assert top.count() == 1 and top.first.get_attribute("data-run-id") == sweep_id
        assert set(page.locator(children_sel).evaluate_all("els => els.map(e => e.dataset.runId)")) == set(by_id)
        counts = f"4/4 done, {len(stopped)} stopped"
        # the panel and the view redraw as the feed moves: wait on selectors, not element handles
        wait_text(page, f"[data-testid=jp-train-run-row][data-run-id='{sweep_id}'] [data-testid=jp-train-sweep-counts]",
                  counts)
        assert row.locator(".jp-train-sweep-best").inner_text() == "best val_acc 1"
        reason = stopped[0]["properties"]["cancel_reason"]
        assert reason.startswith("BanditPolicy:")
        child_row = lab.row(stopped[0]["id"])
        assert child_row.get_attribute("data-parent-id") == sweep_id
        assert child_row.locator(".jp-train-child-reason").inner_text() == reason
        assert reason in child_row.get_attribute("title")
        x = stopped[0]["properties"]["hyperparameters"]["--x"]
        assert child_row.locator(".jp-train-child-params").inner_text() == f"x={x:g}"
        page.screenshot(path=str(out / "sweep-sidebar.png"))

        # The table: best first by the REST API's best_primary_metric, one column per hyperparameter.
        table = view.locator("[data-testid=jp-train-sweep-table]")
        ids = table.locator("tr[data-run-id]").evaluate_all("els => els.map(e => e.dataset.runId)")
        assert sorted(ids) == sorted(by_id)
        values = [by_id[i]["best_primary_metric"] for i in ids]
        assert values == sorted(values, reverse=True), values
        shown = table.locator("tr[data-run-id]").evaluate_all("els => els.map(e => Number(e.dataset.metric))")
        assert shown == values
        assert table.locator("th.jp-train-sweep-param").all_inner_texts() == ["x"]
        xs = table.locator("td[data-param='--x']").evaluate_all("els => els.map(e => Number(e.textContent))")
        assert xs == [by_id[i]["properties"]["hyperparameters"]["--x"] for i in ids]
        assert ids[0] == summary["best"]["run_id"]
        assert view.locator("[data-testid=jp-train-sweep-best]").get_attribute("data-run-id") == summary["best"]["run_id"]
        assert view.locator("[data-testid=jp-train-sweep-counts]").inner_text() == counts
        stopped_row = table.locator(f"tr[data-run-id='{stopped[0]['id']}']")
        assert stopped_row.get_attribute("data-stopped") == "true"
        assert stopped_row.locator(".jp-train-sweep-reason").inner_text() == reason

        # Parallel coordinates: an axis for x and one for val_acc, one line per child.
        parallel = view.locator("[data-testid=jp-train-sweep-parallel]")
        assert parallel.get_attribute("data-axes") == "2"
        paths = parallel.locator("path[data-run-id]")
        assert paths.count() == 4
        assert sorted(paths.evaluate_all("els => els.map(e => e.dataset.runId)")) == sorted(by_id)
        assert "jp-train-pc-stopped" in parallel.locator(f"path[data-run-id='{stopped[0]['id']}']").get_attribute("class")

        # The metric of every child over time: a line per child with the points it logged.
        chart = view.locator("[data-testid=jp-train-sweep-metric-chart]")
        logged = sum(len(lab.call("GET", f"runs/{i}/metrics?limit=100")["items"]) for i in by_id)
        page.wait_for_function(
            "([sel, n]) => { const el = document.querySelector(sel);"
            " return el?.dataset.series === '4' && el.querySelector('[data-testid=jp-train-chart]')?.dataset.points === n; }",
            arg=[f"[data-testid=jp-train-sweep-view][data-run-id='{sweep_id}'] [data-testid=jp-train-sweep-metric-chart]",
                 str(logged)], timeout=15_000)
        assert chart.locator("path.jp-train-series, circle.jp-train-series").count() == 4
        page.screenshot(path=str(out / "sweep-view.png"))
