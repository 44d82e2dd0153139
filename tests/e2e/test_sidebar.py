"""The JupyterLab panel, driven in Debian's chromium by Playwright: runs submitted through the
REST API appear live, open in the main area with logs and charts, can be cancelled from the
panel, compared, filtered, resubmitted and registered as models; server errors show as
notifications. Screenshots land in the test's folder (and test-results/)."""

from __future__ import annotations

import json
import re
import time

from tests.conftest import SCRIPTS
from tests.e2e.readable import check_readable, switch_theme
from tests.e2e.test_lab_monitor import lab_session

ROW = "[data-testid=jp-train-run-row][data-run-id='{}']"


class Lab:
    """The page plus REST calls with the server's token."""

    def __init__(self, page, url, token):
        self.page, self.url, self.token = page, url, token

    def call(self, method, path, body=None, expect=200):
        resp = self.page.request.fetch(
            f"{self.url}train/api/{path}", method=method,
            data=json.dumps(body) if body is not None else None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        assert resp.status == expect, f"{method} {path}: {resp.status} {resp.text()[:300]}"
        return resp.json() if resp.status != 204 else None

    def submit(self, script, args=(), experiment="panel", **extra):
        body = {"experiment": experiment, "source_directory": str(SCRIPTS), "script": script,
                "arguments": list(args), **extra}
        return self.call("POST", "runs", body, expect=201)

    def wait_status(self, run_id, statuses, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"runs/{run_id}")
            if run["status"] in statuses:
                return run
            time.sleep(0.1)
        raise AssertionError(f"{run_id} still {run['status']}")

    def open_panel(self):
        self.page.goto(f"{self.url}lab?token={self.token}")
        tab = self.page.locator(".lm-TabBar-tab[data-id='jupyter-train-sidebar']")
        tab.wait_for(timeout=60_000)
        if "lm-mod-current" not in (tab.get_attribute("class") or ""):
            tab.click()
        self.page.locator("[data-testid=jp-train-sidebar][data-live=true]").wait_for(timeout=30_000)

    def row(self, run_id):
        return self.page.locator(ROW.format(run_id))

    def open_run(self, run_id, tab=None):
        """Open a run's view from its row in the panel (and one of its tabs): the view."""
        self.row(run_id).locator(".jp-train-run-name").click()
        view = self.page.locator(f"[data-testid=jp-train-runview][data-run-id='{run_id}']")
        view.wait_for(timeout=10_000)
        if tab:
            view.locator(f"[data-testid=jp-train-tab-{tab}]").click()
        return view

    def row_status(self, run_id, status, timeout=60_000):
        self.page.wait_for_function(
            "([id, s]) => document.querySelector(`[data-testid=jp-train-run-row][data-run-id='${id}']`)"
            "?.dataset.status === s", arg=[run_id, status], timeout=timeout)


def test_panel_lists_live_opens_logs_and_charts_cancels_and_compares(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, ["print('hello')"], page, "panel") as (url, token, out):
        lab = Lab(page, url, token)
        lab.open_panel()

        # Runs submitted through the REST API appear in the panel without a refresh.
        t0 = time.monotonic()
        first = lab.submit("count.py", ["--n", 12, "--sleep", 0.15])
        lab.row(first["id"]).wait_for(timeout=10_000)
        appeared = time.monotonic() - t0
        second = lab.submit("count.py", ["--n", 6, "--sleep", 0.05], tags={"lr": "0.01", "display_name": "short one"})
        lab.row(second["id"]).wait_for(timeout=10_000)
        print(f"a new run appeared in the panel {appeared * 1000:.0f} ms after its POST")
        assert appeared < 5  # the goal is 1 s (measured above); a shared machine gets slack
        group = page.locator("[data-experiment=panel]")
        assert group.locator("[data-testid=jp-train-run-row]").count() == 2
        lab.row_status(first["id"], "Completed")
        lab.row_status(second["id"], "Completed")
        # the primary metric (the loss series) shows in the row
        assert "loss 0.08333" in lab.row(first["id"]).inner_text()
        # ... beside its parameters, and a display name and tags where the run has them
        assert lab.row(first["id"]).locator("[data-testid=jp-train-run-params]").inner_text() == "n=12 sleep=0.15 · tags finished=yes"  # count.py tags itself
        assert lab.row(second["id"]).locator(".jp-train-run-name").inner_text().startswith("short one ")
        assert lab.row(second["id"]).locator("[data-testid=jp-train-run-params]").inner_text() == "n=6 sleep=0.05 · tags lr=0.01 finished=yes"
        metric_box = lab.row(first["id"]).locator("[data-testid=jp-train-run-metric]").evaluate(
            "el => [el.scrollWidth, el.clientWidth]")
        assert metric_box[0] <= metric_box[1], f"the primary metric is cut: {metric_box}"
        page.screenshot(path=str(out / "panel-runs.png"))

        # Opening a run shows its overview, its log lines and a chart of its metric.
        lab.row(first["id"]).locator(".jp-train-run-name").click()
        view = page.locator(f"[data-testid=jp-train-runview][data-run-id='{first['id']}']")
        view.wait_for(timeout=10_000)
        overview = view.locator("[data-testid=jp-train-overview]")
        overview.wait_for()
        assert "count.py" in overview.inner_text() and "--n 12" in overview.inner_text()
        phases = view.locator("[data-testid=jp-train-phases] [data-phase]")
        assert {"Queued", "Running"} <= set(phases.evaluate_all("els => els.map(e => e.dataset.phase)"))
        assert "ScriptRunConfig(" in view.locator("[data-testid=jp-train-sdk-code]").inner_text()
        params = view.locator("[data-testid=jp-train-params] tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        assert params == [["n", "12", "argument"], ["sleep", "0.15", "argument"]]
        view.locator("[data-testid=jp-train-tab-logs]").click()
        log = view.locator("[data-testid=jp-train-log]")
        page.wait_for_function("el => el.textContent.includes('line 11') && el.textContent.includes('done')",
                               arg=log.element_handle(), timeout=15_000)
        view.locator("[data-testid=jp-train-log-search]").fill("line 1")
        page.wait_for_function("el => el.querySelectorAll('mark').length === 3",  # line 1, 10, 11
                               arg=log.element_handle(), timeout=5_000)
        page.screenshot(path=str(out / "run-logs.png"))
        with page.expect_download() as download:
            view.locator("[data-testid=jp-train-log-download]").click()
        text = open(download.value.path()).read()
        assert text.splitlines()[-2:] == ["line 11", "done"]
        view.locator("[data-testid=jp-train-tab-metrics]").click()
        chart = view.locator("[data-testid=jp-train-chart][data-metric=loss]")
        chart.wait_for(timeout=10_000)
        assert chart.get_attribute("data-points") == "12"
        assert chart.locator("path.jp-train-series").count() == 1
        page.screenshot(path=str(out / "run-metrics.png"))

        # Cancel a running run from the panel: its row reaches Canceled.
        busy = lab.submit("linger.py", experiment="longrun")
        lab.row_status(busy["id"], "Running", timeout=30_000)
        lab.row(busy["id"]).locator("[data-testid=jp-train-run-cancel]").click()
        lab.row_status(busy["id"], "Canceled", timeout=30_000)
        assert lab.call("GET", f"runs/{busy['id']}")["status"] == "Canceled"

        # Compare the two counting runs: one chart with a line per run.
        lab.row(first["id"]).locator("[data-testid=jp-train-run-select]").check()
        lab.row(second["id"]).locator("[data-testid=jp-train-run-select]").check()
        compare_button = page.locator("[data-testid=jp-train-compare-button]")
        assert compare_button.inner_text() == "Compare (2)"
        compare_button.click()
        compare = page.locator("[data-testid=jp-train-compare]")
        compare.wait_for(timeout=10_000)
        loss = compare.locator("[data-testid=jp-train-chart][data-metric=loss]")
        loss.wait_for(timeout=10_000)
        page.wait_for_function("el => el.dataset.points === '18'", arg=loss.element_handle(), timeout=10_000)
        assert loss.get_attribute("data-series") == "2"
        assert loss.locator("path.jp-train-series").count() == 2
        assert compare.locator("[data-testid=jp-train-compare-table] tr[data-run-id]").count() == 2
        # parameters and tags are columns (the ones that differ in bold), and set against the
        # primary metric in parallel coordinates: an axis per parameter, one for loss
        heads = compare.locator("[data-testid=jp-train-compare-table] th").all_inner_texts()
        assert heads[4:7] == ["n", "sleep", "Tags"] and "loss" in heads
        assert compare.locator("th.jp-train-compare-differs").all_inner_texts() == ["n", "sleep"]
        row2 = compare.locator(f"[data-testid=jp-train-compare-table] tr[data-run-id='{second['id']}']")
        assert row2.locator("td[data-param=n]").inner_text() == "6"
        assert "short one" in row2.inner_text() and "lr=0.01" in row2.inner_text()
        parallel = compare.locator("[data-testid=jp-train-compare-parallel]")
        parallel.wait_for(timeout=10_000)
        assert parallel.get_attribute("data-lines") == "2" and parallel.get_attribute("data-axes") == "3"
        axes = parallel.locator("g.jp-train-pc-axis").evaluate_all("gs => gs.map(g => g.dataset.axis)")
        assert axes == ["n", "sleep", "loss"]
        assert compare.locator("[data-testid=jp-train-compare-metric-select]").input_value() == "loss"
        # lower loss is better: the run with 12 steps (loss 1/12) has the best shade
        best = parallel.locator(f"path.jp-train-pc-line[data-run-id='{first['id']}']").get_attribute("class")
        assert "jp-train-pc-q4" in best, best
        # compare's charts share one toolbar; over wall time each run starts at 0 (the second
        # run began seconds after the first, so an absolute clock would start it further right)
        assert compare.locator("[data-testid=jp-train-chart-toolbar]").count() == 1
        compare.locator("[data-testid=jp-train-chart-x]").select_option("time")
        assert loss.locator(".jp-train-chart-axis-label").text_content() == "wall time (s)"
        starts = loss.locator("path.jp-train-series").evaluate_all(
            "ps => ps.map(p => parseFloat(p.getAttribute('d').slice(1)))")
        assert len(starts) == 2 and abs(starts[0] - starts[1]) < 1, starts
        compare.locator("[data-testid=jp-train-chart-x]").select_option("step")
        # every number on compare's charts readable at 1400x900, light and dark
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_timeout(300)
        check_readable(page, "[data-testid=jp-train-compare]", "compare, light")
        page.screenshot(path=str(out / "compare.png"))
        switch_theme(page, "JupyterLab Dark", light=False)
        check_readable(page, "[data-testid=jp-train-compare]", "compare, dark")
        page.screenshot(path=str(out / "compare-dark.png"))
        switch_theme(page, "JupyterLab Light", light=True)
        page.set_viewport_size({"width": 1400, "height": 1000})

        # A run from a notebook cell: its SDK code carries the cell's text (from its snapshot),
        # not a file the user does not have.
        cell = "print('from a cell')\n"
        from_cell = lab.call("POST", "runs", {"experiment": "cells", "script": "cell_train.py",
                                             "extra_files": {"cell_train.py": cell}}, expect=201)
        lab.wait_status(from_cell["id"], {"Completed"})
        lab.row(from_cell["id"]).locator(".jp-train-run-name").click()
        sel = f"[data-testid=jp-train-runview][data-run-id='{from_cell['id']}'] [data-testid=jp-train-sdk-code]"
        # (the overview is drawn again when the cell's text comes: look the block up each time)
        page.wait_for_function("s => document.querySelector(s)?.textContent.includes(\"cell = '''print('from a cell')\")",
                               arg=sel, timeout=10_000)
        code = page.locator(sel)
        assert "open(" not in code.inner_text() and "extra_files={'cell_train.py': cell}" in code.inner_text()


def test_panel_filters_resubmits_registers_and_reports_errors(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, ["print('hello')"], page, "panel-actions") as (url, token, out):
        lab = Lab(page, url, token)
        a = lab.submit("count.py", ["--n", 2], experiment="alpha", tags={"team": "vision"})
        b = lab.submit("fail.py", experiment="beta")
        lab.wait_status(a["id"], ("Completed",))
        lab.wait_status(b["id"], ("Failed",))
        lab.open_panel()
        lab.row(a["id"]).wait_for(timeout=10_000)
        lab.row_status(b["id"], "Failed")
        rows = page.locator("[data-testid=jp-train-run-row]")
        assert rows.count() == 2

        # search by tag, then filter by status and by experiment
        page.locator("[data-testid=jp-train-search]").fill("team:vision")
        page.wait_for_function("document.querySelectorAll('[data-testid=jp-train-run-row]').length === 1")
        assert rows.first.get_attribute("data-run-id") == a["id"]
        page.locator("[data-testid=jp-train-search]").fill("")
        page.locator("[data-testid=jp-train-status-filter] [data-group=failed]").click()
        page.wait_for_function("document.querySelectorAll('[data-testid=jp-train-run-row]').length === 1")
        assert rows.first.get_attribute("data-run-id") == b["id"]
        page.locator("[data-testid=jp-train-status-filter] [data-group=failed]").click()
        page.locator("[data-testid=jp-train-experiment-filter]").select_option("alpha")
        page.wait_for_function("document.querySelectorAll('[data-testid=jp-train-run-row]').length === 1")
        assert rows.first.get_attribute("data-run-id") == a["id"]
        page.locator("[data-testid=jp-train-experiment-filter]").select_option("")

        # Compute shows the local target's nodes; environments show their build state.
        compute = page.locator("[data-testid=jp-train-computes] [data-compute=local]")
        compute.wait_for(timeout=10_000)
        assert compute.locator("[data-kind=idle]").get_attribute("data-count") == "1"
        # A one-node cluster running one run with another waiting: busy 1, queue 1.
        lab.call("POST", "computes", {"name": "tiny", "vm_size": "cpu:1", "min_nodes": 0, "max_nodes": 1},
                 expect=201)
        held = lab.submit("linger.py", experiment="queue", compute_target="tiny")
        waiting = lab.submit("linger.py", experiment="queue", compute_target="tiny")
        tiny = page.locator("[data-testid=jp-train-computes] [data-compute=tiny]")
        tiny.wait_for(timeout=10_000)
        # Looked up afresh on every check: the section is drawn anew on each refresh, so a
        # handle taken once would go on reading a node that left the page.
        page.wait_for_function(
            "() => { const el = document.querySelector('[data-testid=jp-train-computes] [data-compute=tiny]');"
            " return el?.querySelector('[data-kind=busy]')?.dataset.count === '1'"
            " && el.querySelector('[data-queued]')?.dataset.queued === '1'; }",
            timeout=30_000)
        assert waiting["id"] in tiny.locator(".jp-train-queue").inner_text()
        page.screenshot(path=str(out / "panel-compute.png"))
        for run in (waiting, held):
            lab.call("POST", f"runs/{run['id']}/cancel")
            lab.wait_status(run["id"], ("Canceled",), timeout=30)

        # Resubmit from the run view: a new run with the same spec, opened in its own tab.
        lab.row(a["id"]).locator(".jp-train-run-name").click()
        view = page.locator(f"[data-testid=jp-train-runview][data-run-id='{a['id']}']")
        view.locator("[data-testid=jp-train-overview]").wait_for(timeout=10_000)
        view.locator("[data-testid=jp-train-resubmit]").click()
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=jp-train-run-row]').length === 5", timeout=10_000)
        runs = lab.call("GET", "runs?experiment=alpha")["runs"]
        again = next(r for r in runs if r["id"] != a["id"])
        assert again["tags"]["resubmit_of"] == a["id"] and again["arguments"] == a["arguments"]
        newview = page.locator(f"[data-testid=jp-train-runview][data-run-id='{again['id']}']")
        newview.wait_for(timeout=10_000)
        page.wait_for_function("el => el.dataset.status === 'Completed'", arg=newview.element_handle(),
                               timeout=30_000)

        # Register an output as a model; a bad name is refused and the server's message shows.
        newview.locator("[data-testid=jp-train-register]").click()
        dialog = page.locator(".jp-Dialog")
        dialog.locator("select").select_option("outputs/result.txt")
        dialog.locator(".jp-mod-accept").click()
        dialog.locator("input").fill("bad name!")
        dialog.locator(".jp-mod-accept").click()
        toast = page.locator(".Toastify__toast", has_text="Could not register the model")
        toast.wait_for(timeout=10_000)
        assert "Model" in toast.inner_text()  # the server's own words about the name
        page.wait_for_timeout(800)  # let the toast finish sliding in
        page.screenshot(path=str(out / "error-notification.png"))
        newview.locator("[data-testid=jp-train-register]").click()
        dialog.locator("select").select_option("outputs/result.txt")
        dialog.locator(".jp-mod-accept").click()
        dialog.locator("input").fill("counter")
        dialog.locator(".jp-mod-accept").click()
        model = page.locator("[data-testid=jp-train-models] [data-model=counter] [data-version='1']")
        page.locator("[data-section=models] summary").click()
        model.wait_for(timeout=15_000)
        assert again["id"] in model.inner_text()
        assert lab.call("GET", "models")["models"][0]["run_id"] == again["id"]

        # Commands are in the palette; the dark theme applies to the panel.
        page.keyboard.press("Control+Shift+C")
        palette = page.locator(".lm-CommandPalette-input")
        palette.wait_for(timeout=10_000)
        palette.fill("Compare Selected Runs")
        assert page.locator(".lm-CommandPalette-item", has_text="Compare Selected Runs").count() == 1
        page.keyboard.press("Escape")
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Theme$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^JupyterLab Dark$")).click()
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=15_000)
        page.locator("[data-section=environments] summary").click()
        page.locator("[data-testid=jp-train-environments] [data-env]").first.wait_for(timeout=10_000)
        bg = page.locator("[data-testid=jp-train-sidebar]").evaluate("el => getComputedStyle(el).backgroundColor")
        assert bg != "rgb(255, 255, 255)"
        page.screenshot(path=str(out / "panel-dark.png"))


def test_panel_shows_a_ray_clusters_nodes_busy_and_idle(tmp_path, browser_page):
    """A Ray target's cluster in the Compute section: each Ray node with its resources, busy
    while a job holds it, and the request handed to the autoscaler."""
    import os

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                              "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        page = browser_page
        with lab_session(tmp_path, ["print('hello')"], page, "panel-ray") as (url, token, out):
            lab = Lab(page, url, token)
            lab.call("POST", "computes", {"name": "rays", "kind": "ray", "address": cluster.address,
                                          "node_shape": {"CPU": 2}, "max_nodes": 1}, expect=201)
            lab.open_panel()
            # the section is re-rendered on each refresh: wait on selectors, not element handles
            box = "[data-testid=jp-train-computes] [data-compute=rays]"
            node_sel = f"{box} .jp-train-ray-node[data-node-id='{worker.node_id}']"

            def wait_js(expr, arg, timeout=60_000):
                page.wait_for_function(expr, arg=arg, timeout=timeout)

            wait_js("sel => document.querySelectorAll(sel).length === 2", f"{box} .jp-train-ray-node")
            node = page.locator(node_sel)
            assert "CPU 0/2" in node.inner_text() and node.get_attribute("data-state") == "idle"
            run = lab.submit("linger.py", experiment="ray", compute_target="rays")
            wait_js("sel => document.querySelector(sel)?.dataset.state === 'busy'", node_sel, 90_000)
            assert "CPU 2/2" in node.inner_text()
            wait_js("sel => document.querySelector(sel)?.textContent.includes('1 bundle requested')",
                    f"{box} .jp-train-ray-summary", 30_000)
            page.screenshot(path=str(out / "panel-ray.png"))
            lab.call("POST", f"runs/{run['id']}/cancel")
            lab.wait_status(run["id"], ("Canceled",), timeout=60)
            wait_js("sel => document.querySelector(sel)?.dataset.state === 'idle'", node_sel, 30_000)
    finally:
        cluster.shutdown()


def test_run_view_shows_the_images_a_run_logs_as_they_come(tmp_path, browser_page):
    page = browser_page
    with lab_session(tmp_path, ["print('hello')"], page, "images") as (url, token, out):
        lab = Lab(page, url, token)
        lab.open_panel()
        run = lab.submit("log_images.py", ["--sleep", "6"], experiment="images")
        lab.row_status(run["id"], "Running", timeout=30_000)
        view = lab.open_run(run["id"], "metrics")
        figure = "[data-testid=jp-train-images] figure[data-image='outputs/images/{}'] img"
        first = view.locator(figure.format("curve.png"))
        first.wait_for(timeout=20_000)
        page.wait_for_function("el => el.complete && el.naturalWidth === 32", arg=first.element_handle(),
                               timeout=10_000)
        # the second image of the same name arrives through the run's stream while the view is open
        assert lab.call("GET", f"runs/{run['id']}")["status"] == "Running"
        second = view.locator(figure.format("curve_1.png"))
        second.wait_for(timeout=30_000)
        page.wait_for_function("el => el.complete && el.naturalWidth === 16", arg=second.element_handle(),
                               timeout=10_000)
        view.locator(figure.format("figure.png")).wait_for(timeout=10_000)
        lab.row_status(run["id"], "Completed")
        # the table took the points that streamed in with the images
        table = view.locator("[data-testid=jp-train-metrics-table]")
        page.wait_for_function(
            "el => el.querySelector('tr[data-metric=\"per_class/precision\"]') !== null",
            arg=table.element_handle(), timeout=10_000)
        names = view.locator("[data-testid=jp-train-images] figcaption").all_inner_texts()
        assert names == ["curve.png", "curve_1.png", "figure.png"], names
        page.screenshot(path=str(out / "run-images.png"))

        # the Outputs tab lists sizes and previews a table, text and an image on request
        view.locator("[data-testid=jp-train-tab-outputs]").click()
        row = view.locator("tr.jp-train-output[data-file='outputs/predictions.csv']")
        row.wait_for(timeout=10_000)
        assert row.locator(".jp-train-output-size").inner_text() == "56 B"
        row.locator("[data-testid=jp-train-output-preview]").click()
        table = view.locator("[data-testid=jp-train-preview][data-file='outputs/predictions.csv'] table")
        table.wait_for(timeout=10_000)
        cells = table.locator("tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        assert cells == [["image", "label", "score"], ["1.png", "bird, small", "0.9"], ["2.png", "cat", "0.7"]]
        view.locator("tr.jp-train-output[data-file='outputs/summary.txt'] [data-testid=jp-train-output-preview]").click()
        text = view.locator("[data-testid=jp-train-preview][data-file='outputs/summary.txt'] pre")
        text.wait_for(timeout=10_000)
        assert text.inner_text() == "accuracy 0.93\n"
        view.locator("tr.jp-train-output[data-file='outputs/images/curve.png'] [data-testid=jp-train-output-preview]").click()
        img = view.locator("[data-testid=jp-train-preview][data-file='outputs/images/curve.png'] img")
        page.wait_for_function("el => el.complete && el.naturalWidth === 32", arg=img.element_handle(timeout=10_000),
                               timeout=10_000)
        page.screenshot(path=str(out / "run-outputs.png"))
